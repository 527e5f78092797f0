package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchboard-go/switchboard/breaker"
	"github.com/switchboard-go/switchboard/codec"
	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// dedupMiddleware returns deduplication middleware over store.
func (e *env) dedupMiddleware(store dedup.Store) messaging.Middleware {
	e.Helper()
	mw, err := dedup.Middleware(store)
	if err != nil {
		e.Fatalf("dedup.Middleware: %v", err)
	}
	return mw
}

// duplicatesPublishedTwice proves R46: a message published twice with the
// same ID is handled once; both copies are acknowledged.
func duplicatesPublishedTwice(e *env) {
	c := e.client()
	topic := e.name("t")
	store := dedup.NewMemoryStore(dedup.MemoryOptions{})
	var r recorder
	e.subscribe(c, topic, e.name("g"), r.handle, messaging.WithMiddleware(e.dedupMiddleware(store)))
	m := msg("k", "once")
	m.ID = e.name("id")
	again := *m
	e.publish(c, topic, m)
	e.publish(c, topic, &again)
	e.publish(c, topic, msg("k", "marker"))
	e.awaitBodies(&r, "marker")
	if n := r.bodies()["once"]; n != 1 {
		e.Errorf("the duplicated message was handled %d times, want 1", n)
	}
}

// dropAcks is a transport whose subscriptions lose their acknowledgements
// (as when a consumer crashes after handling, before its ack reaches the
// broker), so that the broker delivers the messages again.
type dropAcks struct {
	transport.Transport
	dropped atomic.Int64
}

func (d *dropAcks) Subscribe(ctx context.Context, from transport.Address, group string, o transport.SubscribeOptions) (transport.Subscription, error) {
	s, err := d.Transport.Subscribe(ctx, from, group, o)
	if err != nil {
		return nil, err
	}
	return &dropAcksSub{Subscription: s, d: d}, nil
}

type dropAcksSub struct {
	transport.Subscription
	d *dropAcks
}

func (s *dropAcksSub) Ack(_ context.Context, ids []any) error {
	s.d.dropped.Add(int64(len(ids)))
	return nil
}

// duplicatesRedeliveredAfterLostAck proves R47: a message the broker
// delivers again because its acknowledgement was lost is acknowledged
// without running the handler again, on every transport.
func duplicatesRedeliveredAfterLostAck(e *env) {
	topic, group := e.name("t"), e.name("g")
	store := dedup.NewMemoryStore(dedup.MemoryOptions{}) // shared by both consumers, as Redis would be
	var calls recorder
	handler := func(ctx context.Context, m *messaging.Message) error {
		calls.add(m)
		return nil
	}
	// The first consumer handles the message but its ack is lost.
	lossy := &dropAcks{Transport: e.transport()}
	first, err := messaging.New(lossy, clientOpts()...)
	if err != nil {
		e.Fatal(err)
	}
	pub := e.client()
	e.subscribe(first, topic, group, handler, messaging.WithMiddleware(e.dedupMiddleware(store)))
	e.publish(pub, topic, msg("k", "dup"))
	e.awaitBodies(&calls, "dup")
	if err := first.Close(); err != nil {
		e.Fatalf("close the first consumer: %v", err)
	}
	if lossy.dropped.Load() == 0 {
		e.Fatal("no acknowledgement was dropped")
	}
	// The broker delivers it again to the group's next consumer.
	var seen recorder
	second := e.client()
	e.subscribe(second, topic, group, func(ctx context.Context, m *messaging.Message) error {
		seen.add(m)
		return nil
	}, messaging.WithMiddleware(func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			seen.add(m) // every delivery, before deduplication
			return next(ctx, m)
		}
	}, e.dedupMiddleware(store)), messaging.WithMiddleware(func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			calls.add(m) // handler calls, after deduplication
			return next(ctx, m)
		}
	}))
	e.awaitBodies(&seen, "dup")
	e.publish(pub, topic, msg("k", "marker"))
	e.awaitBodies(&calls, "marker")
	if n := calls.bodies()["dup"]; n != 1 {
		e.Errorf("the redelivered message was handled %d times, want 1", n)
	}
}

type orderV2 struct {
	ID    string `json:"id"`
	Cents int    `json:"cents"`
}

// versioningUpgrade proves R48: type, version and content type travel with
// the message, and a registered upgrade turns an old version into the one
// the handler expects before it sees it.
func versioningUpgrade(e *env) {
	c := e.client()
	topic := e.name("t")
	r := codec.NewRouter(codec.JSON)
	got := make(chan orderV2, 4)
	codec.Route(r, "order.created", "2", func(ctx context.Context, m *messaging.Message, o orderV2) error {
		got <- o
		return nil
	})
	r.Upgrade("order.created", "1", "2", func(m *messaging.Message) error {
		var v1 struct {
			ID    string  `json:"id"`
			Euros float64 `json:"euros"`
		}
		if err := json.Unmarshal(m.Body, &v1); err != nil {
			return err
		}
		var err error
		m.Body, err = json.Marshal(orderV2{ID: v1.ID, Cents: int(v1.Euros * 100)})
		return err
	})
	e.subscribe(c, topic, e.name("g"), r.Handler())
	v1, err := codec.Encode(codec.JSON, "order.created", "1", map[string]any{"id": "old", "euros": 2.5})
	if err != nil {
		e.Fatal(err)
	}
	v2, _ := codec.Encode(codec.JSON, "order.created", "2", orderV2{ID: "new", Cents: 7})
	v1.Key, v2.Key = "k", "k"
	e.publish(c, topic, v1, v2)
	for _, want := range []orderV2{{"old", 250}, {"new", 7}} {
		select {
		case o := <-got:
			if o != want {
				e.Errorf("handler got %+v, want %+v", o, want)
			}
		case <-e.ctx.Done():
			e.Fatalf("timed out waiting for %+v", want)
		}
	}
}

// versioningBadMessagesDeadLettered proves R49: a message of unknown type or
// version, or with an undecodable body, is dead-lettered at once with the
// reason, never retried and never a panic.
func versioningBadMessagesDeadLettered(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	dl := e.listenDeadLetters(c, messaging.DeadLetterQueue(topic, group))
	r := codec.NewRouter()
	codec.Route(r, "known", "1", func(ctx context.Context, m *messaging.Message, v map[string]any) error { return nil })
	e.subscribe(c, topic, group, r.Handler())
	bad := map[string]*messaging.Message{
		"unknown-type":    {Type: "mystery", Version: "1", Body: []byte("unknown-type")},
		"unknown-version": {Type: "known", Version: "9", Body: []byte("unknown-version")},
		"undecodable":     {Type: "known", Version: "1", ContentType: "application/json", Body: []byte("undecodable")},
		"no-codec":        {Type: "known", Version: "1", ContentType: "text/csv", Body: []byte("no-codec")},
	}
	for _, m := range bad {
		e.publish(c, topic, m)
	}
	for body, reason := range map[string]string{
		"unknown-type": "no route", "unknown-version": "no upgrade", "undecodable": "undecodable", "no-codec": "no codec",
	} {
		env := dl.await(e, body)
		if env.LastAttempt != 1 || !env.Permanent || !strings.Contains(env.LastError, reason) {
			e.Errorf("%s: dead letter %+v; want 1 attempt, permanent, reason containing %q", body, env, reason)
		}
	}
}

// breakerHandlerPauses proves R50: a handler that keeps failing opens the
// handler breaker, which pauses consumption (no attempt is spent, nothing
// is dead-lettered) until a probe succeeds.
func breakerHandlerPauses(e *env) {
	c := e.client()
	topic := e.name("t")
	opened := make(chan struct{})
	var once sync.Once
	mw, err := breaker.Handler(breaker.WithFailures(2), breaker.WithOpenTimeout(time.Second),
		breaker.WithOnStateChange(func(_ string, _, to breaker.State) {
			if to == breaker.StateOpen {
				once.Do(func() { close(opened) })
			}
		}))
	if err != nil {
		e.Fatal(err)
	}
	var failing atomic.Bool
	failing.Store(true)
	var calls atomic.Int32
	var r recorder
	e.subscribe(c, topic, e.name("g"), func(ctx context.Context, m *messaging.Message) error {
		calls.Add(1)
		if failing.Load() {
			return errors.New("dependency down")
		}
		return r.handle(ctx, m)
	}, messaging.WithMiddleware(mw), messaging.WithRetry(messaging.RetryPolicy{
		MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Multiplier: 1,
	}))
	e.publish(c, topic, msg("k", "held"))
	e.await("the breaker to open", opened)
	failing.Store(false) // the dependency is back; the paused call probes it
	e.awaitBodies(&r, "held")
	if n := calls.Load(); n != 3 {
		e.Errorf("handler called %d times, want 3: two failures, then the probe", n)
	}
}

// failSends is a transport whose sends fail while fail is set.
type failSends struct {
	transport.Transport
	fail  atomic.Bool
	sends atomic.Int64
}

func (f *failSends) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	f.sends.Add(1)
	if f.fail.Load() {
		return errors.New("injected broker failure: " + transport.ErrUnavailable.Error())
	}
	return f.Transport.Send(ctx, to, msgs)
}

// breakerSendFailsFast proves R51: a broker that keeps failing makes sends
// fail fast with breaker.ErrOpen, without reaching the broker, and sends
// recover once a probe succeeds.
func breakerSendFailsFast(e *env) {
	ft := &failSends{Transport: e.transport()}
	mw, err := breaker.Send(breaker.WithFailures(3), breaker.WithOpenTimeout(200*time.Millisecond))
	if err != nil {
		e.Fatal(err)
	}
	c, err := messaging.New(ft, clientOpts(messaging.WithSendMiddleware(mw))...)
	if err != nil {
		e.Fatal(err)
	}
	e.Cleanup(func() { c.Close() })
	topic := e.name("t")
	var r recorder
	e.subscribe(e.client(), topic, e.name("g"), r.handle)
	ft.fail.Store(true)
	for i := 0; i < 3; i++ {
		if err := c.Publish(e.ctx, topic, msg("", "x")); err == nil || errors.Is(err, breaker.ErrOpen) {
			e.Fatalf("publish %d: %v; want the injected failure", i, err)
		}
	}
	before := ft.sends.Load()
	err = c.Publish(e.ctx, topic, msg("", "x"))
	if !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, messaging.ErrUnavailable) {
		e.Fatalf("publish with the breaker open: %v; want ErrOpen", err)
	}
	if ft.sends.Load() != before {
		e.Fatal("an open breaker let a send reach the broker")
	}
	ft.fail.Store(false)
	// The breaker half-opens on the first send after its timeout: retry
	// until the probe goes through (there is no signal to wait for).
	for {
		err := c.Publish(e.ctx, topic, msg("", "recovered"))
		if err == nil {
			break
		}
		if !errors.Is(err, breaker.ErrOpen) {
			e.Fatalf("publish after recovery: %v", err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-e.ctx.Done():
			e.Fatal("the breaker never closed")
		}
	}
	e.awaitBodies(&r, "recovered")
}

// tracer returns a tracer provider recording into an in-memory exporter.
func (e *env) tracer() (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	e.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp, exp
}

// tracingPublishToConsumer proves R52: a trace started by a publisher on
// one client continues in the consumer on another, through the message's
// headers: the process span is a child of the publish span.
func tracingPublishToConsumer(e *env) {
	tp, exp := e.tracer()
	pub := e.client(messaging.WithTracerProvider(tp))
	sub := e.client(messaging.WithTracerProvider(tp))
	topic := e.name("t")
	seen := make(chan trace.SpanContext, 1)
	e.subscribe(sub, topic, e.name("g"), func(ctx context.Context, m *messaging.Message) error {
		select {
		case seen <- trace.SpanContextFromContext(ctx):
		default:
		}
		return nil
	})
	ctx, root := tp.Tracer("conformance").Start(e.ctx, "checkout")
	if err := pub.Publish(ctx, topic, msg("", "traced")); err != nil {
		e.Fatalf("publish: %v", err)
	}
	root.End()
	var got trace.SpanContext
	select {
	case got = <-seen:
	case <-e.ctx.Done():
		e.Fatal("timed out waiting for the message")
	}
	if got.TraceID() != root.SpanContext().TraceID() {
		e.Fatalf("the consumer's trace is %s, the publisher's %s", got.TraceID(), root.SpanContext().TraceID())
	}
	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range exp.GetSpans() {
		spans[s.Name] = s.Snapshot()
	}
	p, ok := spans["publish "+topic]
	if !ok {
		e.Fatalf("no publish span among %v", names(exp))
	}
	if got.SpanID() == p.SpanContext().SpanID() || !got.IsValid() {
		e.Fatalf("the handler's span %v is not a process span", got)
	}
	// The process span ends after the handler returns: wait for it.
	e.waitSpan(exp, "process "+topic, func(s tracetest.SpanStub) bool { return s.Parent.SpanID() == p.SpanContext().SpanID() })
}

// tracingRequestReply proves R53: a request's trace continues in the
// responder, and the request span covers the round trip.
func tracingRequestReply(e *env) {
	tp, exp := e.tracer()
	req := e.client(messaging.WithTracerProvider(tp))
	resp := e.client(messaging.WithTracerProvider(tp))
	svc := e.name("s")
	traces := make(chan trace.TraceID, 1)
	e.serve(resp, svc, func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		select {
		case traces <- trace.SpanContextFromContext(ctx).TraceID():
		default:
		}
		return &messaging.Message{Body: []byte("pong")}, nil
	})
	ctx, root := tp.Tracer("conformance").Start(e.ctx, "caller")
	if _, err := req.Request(ctx, svc, &messaging.Message{Body: []byte("ping")}); err != nil {
		e.Fatalf("request: %v", err)
	}
	root.End()
	if got := <-traces; got != root.SpanContext().TraceID() {
		e.Fatalf("the responder's trace is %s, the requester's %s", got, root.SpanContext().TraceID())
	}
	e.waitSpan(exp, "request "+svc, func(s tracetest.SpanStub) bool {
		return s.Parent.SpanID() == root.SpanContext().SpanID() && s.SpanKind == trace.SpanKindClient
	})
}

// waitSpan waits until exp holds a span named name for which ok holds.
func (e *env) waitSpan(exp *tracetest.InMemoryExporter, name string, ok func(tracetest.SpanStub) bool) {
	e.Helper()
	for {
		for _, s := range exp.GetSpans() {
			if s.Name == name && ok(s) {
				return
			}
		}
		select {
		case <-time.After(10 * time.Millisecond): // spans are exported on End; nothing signals it
		case <-e.ctx.Done():
			e.Fatalf("no matching span %q among %v", name, names(exp))
		}
	}
}

func names(exp *tracetest.InMemoryExporter) []string {
	var out []string
	for _, s := range exp.GetSpans() {
		out = append(out, s.Name)
	}
	return out
}
