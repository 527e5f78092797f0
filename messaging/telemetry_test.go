package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
)

func TestTracePropagatesFromPublisherToConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, _ := inmem.NewBroker()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(ctx)

	pub, err := messaging.New(b.Transport(), messaging.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := messaging.New(b.Transport(), messaging.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	seen := make(chan trace.SpanContext, 1)
	if _, err := sub.Subscribe(ctx, "traced", "g", func(ctx context.Context, m *messaging.Message) error {
		seen <- trace.SpanContextFromContext(ctx)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rootCtx, root := tp.Tracer("test").Start(ctx, "checkout")
	if err := pub.Publish(rootCtx, "traced", &messaging.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	root.End()
	got := <-seen
	if got.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("consumer trace %s, publisher trace %s", got.TraceID(), root.SpanContext().TraceID())
	}
	sub.Close()
	pub.Close()
	names := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range exp.GetSpans().Snapshots() {
		names[s.Name()] = s
	}
	pubSpan, ok1 := names["publish traced"]
	procSpan, ok2 := names["process traced"]
	if !ok1 || !ok2 {
		t.Fatalf("spans: %v", names)
	}
	if procSpan.Parent().SpanID() != pubSpan.SpanContext().SpanID() {
		t.Fatalf("process span's parent is %s, want the publish span %s", procSpan.Parent().SpanID(), pubSpan.SpanContext().SpanID())
	}
	if pubSpan.SpanKind() != trace.SpanKindProducer || procSpan.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("kinds %v %v", pubSpan.SpanKind(), procSpan.SpanKind())
	}
}

func TestRequestSpanAndMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	c, err := messaging.Open(ctx, "mem://", messaging.WithTracerProvider(tp), messaging.WithMeterProvider(mp),
		messaging.WithSubscribeDefaults(messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Multiplier: 1})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Serve(ctx, "svc", func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, "svc", &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	dead := make(chan struct{})
	if _, err := c.Listen(ctx, messaging.DeadLetterQueue("fails", "g"), func(context.Context, *messaging.Message) error { close(dead); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "fails", "g", func(context.Context, *messaging.Message) error { return errors.New("no") }); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "fails", &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	<-dead
	c.Close()

	var spans []string
	for _, s := range exp.GetSpans().Snapshots() {
		spans = append(spans, s.Name())
	}
	for _, want := range []string{"request svc", "send svc.rpc", "process svc", "reply "} {
		found := false
		for _, s := range spans {
			if len(s) >= len(want) && s[:len(want)] == want {
				found = true
			}
		}
		if !found {
			t.Errorf("no span %q in %v", want, spans)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					sums[m.Name] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					sums[m.Name] += int64(p.Count)
				}
			}
		}
	}
	for name, min := range map[string]int64{
		"messaging.client.sent.messages":     4, // request, reply, publish, dead letter
		"messaging.client.consumed.messages": 3,
		"switchboard.messages.acked":         3,
		"switchboard.messages.retried":       1,
		"switchboard.messages.dead_lettered": 1,
		"messaging.process.duration":         4,
	} {
		if sums[name] < min {
			t.Errorf("%s = %d, want at least %d (all: %v)", name, sums[name], min, sums)
		}
	}
	if sums["switchboard.messages.in_flight"] != 0 {
		t.Errorf("in flight after close = %d", sums["switchboard.messages.in_flight"])
	}
}
