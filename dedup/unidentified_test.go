package dedup_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/messaging"
)

// TestMessagesWithoutIDPassThrough proves R84: messages without an ID (a
// foreign AMQP producer's without message-id) are never deduplicated, so
// never dropped: every one is handled, counted, and the first logged once.
func TestMessagesWithoutIDPassThrough(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	var logs bytes.Buffer
	mw := mustMiddleware(t, dedup.NewMemoryStore(dedup.MemoryOptions{}), dedup.WithMeterProvider(mp),
		dedup.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	calls := 0
	h := mw(func(context.Context, *messaging.Message) error { calls++; return nil })
	for _, body := range []string{"a", "b", "c"} {
		if err := h(ctx, &messaging.Message{ReceivedFrom: "plain", Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 3 {
		t.Fatalf("handler ran %d times for 3 messages without ID; want 3", calls)
	}
	if n := strings.Count(logs.String(), "without an ID"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var got int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "switchboard.dedup.unidentified" {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					got += dp.Value
				}
			}
		}
	}
	if got != 3 {
		t.Errorf("switchboard.dedup.unidentified = %d, want 3", got)
	}
	// Messages with an ID are still deduplicated.
	h(ctx, &messaging.Message{ID: "x", ReceivedFrom: "plain"})
	h(ctx, &messaging.Message{ID: "x", ReceivedFrom: "plain"})
	if calls != 4 {
		t.Errorf("handler ran %d times; want 4", calls)
	}
}
