package outbox_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// collect returns the outbox's metrics by name: counters' sums and
// gauges' values.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] += float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] = float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] = p.Value
				}
			}
		}
	}
	return out
}

// TestMetrics: backlog and oldest age before relaying; relayed and failed
// after.
func TestMetrics(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		c := memClient(t, inmem.WithMaxMessageSize(1000))
		writer := newOutbox(t, db, memClient(t))
		ob := sibling(t, db, writer, c, outbox.WithMeterProvider(mp))
		got := newReceived()
		if _, err := c.Subscribe(ctx, "orders", "billing", got.handler); err != nil {
			t.Fatal(err)
		}
		inTx(t, ctx, db.DB, func(tx *sql.Tx) error {
			return writer.Publish(ctx, tx, "orders", &messaging.Message{ID: "a"}, &messaging.Message{ID: "b"},
				&messaging.Message{ID: "big", Body: make([]byte, 2000)})
		})
		// The database's clock: make the rows a minute old.
		if _, err := db.ExecContext(ctx, "UPDATE "+ob.Table()+" SET created_at = created_at - INTERVAL '1' MINUTE"); err != nil {
			t.Fatal(err)
		}
		m := collect(t, reader)
		if m["switchboard.outbox.backlog"] != 3 || m["switchboard.outbox.oldest_age"] < 59 {
			t.Fatalf("before relaying: %v; want backlog 3, oldest age about 60s", m)
		}
		startRelays(t, ctx, ob)
		got.waitIDs(t, ctx, []string{"a", "b"})
		waitEmpty(t, ctx, ob)
		m = collect(t, reader)
		if m["switchboard.outbox.relayed"] != 2 || m["switchboard.outbox.failed"] != 1 ||
			m["switchboard.outbox.backlog"] != 0 || m["switchboard.outbox.oldest_age"] != 0 {
			t.Fatalf("after relaying: %v; want relayed 2, failed 1, backlog 0, age 0", m)
		}
	})
}
