package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient(t *testing.T, tr transport.Transport, opts ...messaging.ClientOption) *messaging.Client {
	t.Helper()
	c, err := messaging.New(tr, append([]messaging.ClientOption{messaging.WithDrainTimeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// deadLetterOf listens on dlq and returns the first dead letter.
func deadLetterOf(t *testing.T, ctx context.Context, c *messaging.Client, dlq string) <-chan *messaging.DeadLetter {
	t.Helper()
	ch := make(chan *messaging.DeadLetter, 4)
	if _, err := c.Listen(ctx, dlq, func(_ context.Context, m *messaging.Message) error {
		dl, err := messaging.ParseDeadLetter(m)
		if err != nil {
			t.Errorf("ParseDeadLetter: %v", err)
			return nil
		}
		ch <- dl
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ch
}

// Input 4 of issue 11: a transport with a 2,000-byte limit, a message with
// an 801-byte body and a long error: the dead letter is shrunk to fit (the
// error text cut), sent, and the message settled.
func TestDeadLetterShrunkToFitSmallTransport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		body    int
		wantCut []string
	}{
		{"ErrorCut", 801, []string{messaging.TruncatedError}},
		{"ErrorHeadersAndBodyCut", 1900, []string{messaging.TruncatedError, messaging.TruncatedHeaders, messaging.TruncatedBody}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			b, _ := inmem.NewBroker(inmem.WithMaxMessageSize(2000))
			c := newClient(t, b.Transport())
			dls := deadLetterOf(t, ctx, c, messaging.DeadLetterQueue("orders", "g"))
			next := make(chan struct{})
			if _, err := c.Subscribe(ctx, "orders", "g", func(_ context.Context, m *messaging.Message) error {
				if string(m.Body) == "next" {
					close(next)
					return nil
				}
				return messaging.Permanent(errors.New(strings.Repeat("x", 3000)))
			}); err != nil {
				t.Fatal(err)
			}
			body := []byte(strings.Repeat("b", tc.body))
			if err := c.Publish(ctx, "orders", &messaging.Message{Key: "k", Body: body, Headers: map[string]string{"a": "1"}},
				&messaging.Message{Key: "k", Body: []byte("next")}); err != nil {
				t.Fatal(err)
			}
			select {
			case dl := <-dls:
				if !slices.Equal(dl.Truncated, tc.wantCut) {
					t.Errorf("Truncated = %v, want %v", dl.Truncated, tc.wantCut)
				}
				if !strings.HasPrefix(string(body), string(dl.Original.Body)) || len(dl.Original.Body) == 0 {
					t.Errorf("body of %d bytes is not a prefix of the original", len(dl.Original.Body))
				}
				if slices.Contains(tc.wantCut, messaging.TruncatedBody) == (len(dl.Original.Body) == len(body)) {
					t.Errorf("body %d of %d bytes, Truncated %v", len(dl.Original.Body), len(body), dl.Truncated)
				}
				if dl.LastError == "" || len(dl.LastError) >= 3000 {
					t.Errorf("error text of %d bytes, want cut", len(dl.LastError))
				}
			case <-ctx.Done():
				t.Fatal("no dead letter")
			}
			select {
			case <-next:
			case <-ctx.Done():
				t.Fatal("the key's next message was not handled")
			}
		})
	}
}

// refuseDLQ refuses sends to queues whose name ends in ".dlq".
type refuseDLQ struct{ transport.Transport }

func (t refuseDLQ) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	if to.Kind == transport.KindQueue && strings.HasSuffix(to.Name, ".dlq") {
		return fmt.Errorf("%w: refused", transport.ErrInvalid)
	}
	return t.Transport.Send(ctx, to, msgs)
}

// A dead letter that can never be sent settles the message, logged and
// counted in switchboard.messages.dead_letter_failed; the key moves on.
func TestUnsendableDeadLetterSettlesWithMetric(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	c := newClient(t, refuseDLQ{b.Transport()}, messaging.WithMeterProvider(mp))
	var poisonCalls atomic.Int32
	next := make(chan struct{})
	if _, err := c.Subscribe(ctx, "orders", "g", func(_ context.Context, m *messaging.Message) error {
		if string(m.Body) == "next" {
			close(next)
			return nil
		}
		poisonCalls.Add(1)
		return messaging.Permanent(errors.New("poison"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "orders", &messaging.Message{Key: "k", Body: []byte("poison")}, &messaging.Message{Key: "k", Body: []byte("next")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-next:
	case <-ctx.Done():
		t.Fatal("the key is blocked behind an unsendable dead letter")
	}
	if n := poisonCalls.Load(); n != 1 {
		t.Errorf("poison handled %d times, want 1", n)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var failed int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == "switchboard.messages.dead_letter_failed" {
				for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
					failed += dp.Value
				}
			}
		}
	}
	if failed != 1 {
		t.Errorf("switchboard.messages.dead_letter_failed = %d, want 1", failed)
	}
}

// dupReplies delivers every reply twice, as an at-least-once broker may.
type dupReplies struct{ transport.Transport }

func (t dupReplies) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	if err := t.Transport.Send(ctx, to, msgs); err != nil || to.Kind != transport.KindReply {
		return err
	}
	return t.Transport.Send(ctx, to, msgs)
}

// Input 6 of issue 11: one responding group whose reply is delivered twice
// is counted once, and replies say which group sent them.
func TestGatherCountsOneReplyPerResponder(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	c := newClient(t, dupReplies{b.Transport()})
	answer := func(_ context.Context, req *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: []byte("ok")}, nil
	}
	if _, err := c.Respond(ctx, "prices", "pricer-a", answer); err != nil {
		t.Fatal(err)
	}
	g, err := c.Gather(ctx, "prices", &messaging.Message{Body: []byte("q")}, messaging.WantReplies(2), messaging.GatherTimeout(500*time.Millisecond))
	if !errors.Is(err, messaging.ErrTimeout) || g.Count() != 1 {
		t.Fatalf("one group, its reply delivered twice: %d replies, %v; want 1 and ErrTimeout", g.Count(), err)
	}
	if got := g.Replies[0].Responder; got != "pricer-a" {
		t.Errorf("Responder = %q, want pricer-a", got)
	}
	if _, err := c.Respond(ctx, "prices", "pricer-b", func(context.Context, *messaging.Message) (*messaging.Message, error) {
		return nil, messaging.WithCode(errors.New("no price"), "E1")
	}); err != nil {
		t.Fatal(err)
	}
	g, err = c.Gather(ctx, "prices", &messaging.Message{Body: []byte("q")}, messaging.WantReplies(2))
	if err != nil || g.Count() != 2 || len(g.Errors) != 1 {
		t.Fatalf("two groups: %d replies (%d errors), %v", g.Count(), len(g.Errors), err)
	}
	if g.Errors[0].Responder != "pricer-b" || g.Replies[0].Responder != "pricer-a" {
		t.Errorf("responders: reply %q, error %q", g.Replies[0].Responder, g.Errors[0].Responder)
	}
	if _, err := c.Serve(ctx, "quote", answer); err != nil {
		t.Fatal(err)
	}
	reply, err := c.Request(ctx, "quote", &messaging.Message{Body: []byte("q")})
	if err != nil || reply.Responder != "quote" {
		t.Errorf("Request: responder %q, %v; want quote", reply.Responder, err)
	}
}

// slowInbox blocks OpenInbox until release is closed.
type slowInbox struct {
	transport.Transport
	entered chan struct{}
	once    sync.Once
	release chan struct{}
}

func (t *slowInbox) OpenInbox(ctx context.Context) (transport.Inbox, error) {
	t.once.Do(func() { close(t.entered) })
	select {
	case <-t.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return t.Transport.OpenInbox(ctx)
}

// Input 7 of issue 11: while the first Request opens the reply inbox, a
// Publish does not wait for it, and another Request waits only as long as
// its own context.
func TestInboxOpeningBlocksNoOtherCall(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	tr := &slowInbox{Transport: b.Transport(), entered: make(chan struct{}), release: make(chan struct{})}
	c := newClient(t, tr)
	if _, err := c.Serve(ctx, "echo", func(_ context.Context, m *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: m.Body}, nil
	}); err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := c.Request(ctx, "echo", &messaging.Message{Body: []byte("1")})
		first <- err
	}()
	<-tr.entered
	pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.Publish(pctx, "events", &messaging.Message{Body: []byte("x")}); err != nil {
		t.Errorf("Publish while the inbox opens: %v", err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	rcancel()
	if _, err := c.Request(rctx, "echo", &messaging.Message{Body: []byte("2")}); !errors.Is(err, context.Canceled) {
		t.Errorf("Request with a cancelled context while the inbox opens: %v, want context.Canceled", err)
	}
	select {
	case err := <-first:
		t.Fatalf("the first Request returned before its inbox opened: %v", err)
	default:
	}
	close(tr.release)
	if err := <-first; err != nil {
		t.Errorf("first Request: %v", err)
	}
}

// A client closed while its inbox opens does not wait for the opening and
// leaks nothing.
func TestShutdownDuringInboxOpening(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	tr := &slowInbox{Transport: b.Transport(), entered: make(chan struct{}), release: make(chan struct{})}
	c, err := messaging.New(tr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Request(ctx, "echo", &messaging.Message{Body: []byte("1")})
		done <- err
	}()
	<-tr.entered
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; err == nil {
		t.Errorf("Request succeeded on a closed client")
	}
}

// A reply that the headers the responder adds push over the transport's
// limit reaches the requester as a *RemoteError instead of failing the
// send forever.
func TestReplyOverLimitBecomesRemoteError(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker(inmem.WithMaxMessageSize(2000))
	c := newClient(t, b.Transport())
	if _, err := c.Serve(ctx, "big", func(context.Context, *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{ID: "r", Body: []byte(strings.Repeat("r", 1990))}, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Request(ctx, "big", &messaging.Message{Body: []byte("q")})
	var re *messaging.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "too large") {
		t.Fatalf("Request: %v, want a *RemoteError saying the reply is too large", err)
	}
}

// callLog records the subscription calls messaging makes.
type callLog struct {
	transport.Transport
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(s string) {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
}

func (l *callLog) Subscribe(ctx context.Context, from transport.Address, group string, o transport.SubscribeOptions) (transport.Subscription, error) {
	s, err := l.Transport.Subscribe(ctx, from, group, o)
	if err != nil {
		return nil, err
	}
	return &loggedSub{Subscription: s, l: l}, nil
}

type loggedSub struct {
	transport.Subscription
	l *callLog
}

func (s *loggedSub) Ack(ctx context.Context, ids []any) error {
	s.l.add(fmt.Sprintf("ack %d", len(ids)))
	return s.Subscription.Ack(ctx, ids)
}

func (s *loggedSub) Nack(ctx context.Context, ids []any) error {
	s.l.add(fmt.Sprintf("nack %d", len(ids)))
	return s.Subscription.Nack(ctx, ids)
}

func (s *loggedSub) Close() error {
	s.l.add("close")
	return s.Subscription.Close()
}

// Input 2 of issue 11: a shutdown releases what it holds (a message
// waiting for its retry, messages queued behind its key) by closing the
// transport subscription after its last ack, never by nacking while the
// broker consumer still runs; the next member sees each released message
// as one more delivery.
func TestShutdownReleasesByCloseNotNack(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	l := &callLog{Transport: b.Transport()}
	c1 := newClient(t, l)
	var mu sync.Mutex
	var attempts []int
	first := make(chan struct{})
	handledDone := make(chan struct{})
	var once, onceDone sync.Once
	if _, err := c1.Subscribe(ctx, "jobs", "g", func(_ context.Context, m *messaging.Message) error {
		if string(m.Body) == "done" {
			onceDone.Do(func() { close(handledDone) })
		}
		if string(m.Body) != "retry" {
			return nil
		}
		mu.Lock()
		attempts = append(attempts, m.Attempt)
		mu.Unlock()
		once.Do(func() { close(first) })
		return errors.New("fails")
	}, messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Minute, MaxBackoff: time.Minute, Multiplier: 1})); err != nil {
		t.Fatal(err)
	}
	if err := c1.Publish(ctx, "jobs", &messaging.Message{Key: "k", Body: []byte("retry")}, &messaging.Message{Key: "k", Body: []byte("behind")},
		&messaging.Message{Key: "other", Body: []byte("done")}); err != nil {
		t.Fatal(err)
	}
	<-first
	<-handledDone // "done" (another key) is handled, not handed over
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	calls := slices.Clone(l.calls)
	l.mu.Unlock()
	if len(calls) == 0 || calls[len(calls)-1] != "close" || slices.ContainsFunc(calls, func(s string) bool { return strings.HasPrefix(s, "nack") }) {
		t.Errorf("subscription calls %v: want acks, then close, and no nack", calls)
	}
	c2 := newClient(t, b.Transport())
	got := make(chan *messaging.Message, 4)
	if _, err := c2.Subscribe(ctx, "jobs", "g", func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"retry", "behind"} {
		select {
		case m := <-got:
			if string(m.Body) != want || m.Attempt != 2 {
				t.Errorf("next member got %q with attempt %d, want %q with attempt 2", m.Body, m.Attempt, want)
			}
		case <-ctx.Done():
			t.Fatalf("%s not handed over", want)
		}
	}
}

// lostDLQ reports the dead-letter queue missing until it is declared.
type lostDLQ struct {
	transport.Transport
	mu       sync.Mutex
	declared int
}

func (t *lostDLQ) Declare(ctx context.Context, a transport.Address) error {
	t.mu.Lock()
	if strings.HasSuffix(a.Name, ".dlq") {
		t.declared++
	}
	t.mu.Unlock()
	return t.Transport.Declare(ctx, a)
}

func (t *lostDLQ) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	t.mu.Lock()
	missing := t.declared == 0 && strings.HasSuffix(to.Name, ".dlq")
	t.mu.Unlock()
	if missing {
		return fmt.Errorf("%w: queue %s", transport.ErrNotFound, to.Name)
	}
	return t.Transport.Send(ctx, to, msgs)
}

// A dead-letter queue that does not exist when the first dead letter is
// sent (it is created by its first dead letter, or was deleted behind the
// subscription's back) is declared, and the dead letter sent.
func TestDeadLetterQueueDeclaredAgain(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	tr := &lostDLQ{Transport: b.Transport()}
	c := newClient(t, tr, messaging.WithSubscribeDefaults(messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 1, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Multiplier: 1})))
	if _, err := c.Subscribe(ctx, "orders", "g", func(context.Context, *messaging.Message) error { return errors.New("fails") }); err != nil {
		t.Fatal(err)
	}
	dls := deadLetterOf(t, ctx, newClient(t, b.Transport()), messaging.DeadLetterQueue("orders", "g"))
	if err := c.Publish(ctx, "orders", &messaging.Message{Body: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	select {
	case dl := <-dls:
		if string(dl.Original.Body) != "m" {
			t.Errorf("dead letter of %q", dl.Original.Body)
		}
	case <-ctx.Done():
		t.Fatal("no dead letter")
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.declared < 1 {
		t.Errorf("dead-letter queue declared %d times, want it declared", tr.declared)
	}
}

// countSends counts the sends that reach the transport.
type countSends struct {
	transport.Transport
	n atomic.Int32
}

func (t *countSends) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	t.n.Add(1)
	return t.Transport.Send(ctx, to, msgs)
}

// A message at the transport's limit that the trace context, added after
// the caller's size check, pushes over it fails with ErrMessageTooLarge
// before it reaches the transport.
func TestTraceHeadersSizeChecked(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker(inmem.WithMaxMessageSize(2000))
	tr := &countSends{Transport: b.Transport()}
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	c := newClient(t, tr, messaging.WithTracerProvider(tp))
	m := &messaging.Message{ID: "id", Body: []byte(strings.Repeat("b", 1998))}
	if err := c.Publish(ctx, "events", m); !errors.Is(err, messaging.ErrMessageTooLarge) {
		t.Fatalf("Publish: %v, want ErrMessageTooLarge", err)
	}
	if n := tr.n.Load(); n != 0 {
		t.Errorf("%d sends reached the transport", n)
	}
}
