package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/switchboard-go/switchboard/breaker"
	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type change struct{ from, to breaker.State }

func (c change) String() string { return c.from.String() + "->" + c.to.String() }

// changes records state changes on a channel.
func changes() (chan change, breaker.Option) {
	ch := make(chan change, 100)
	return ch, breaker.WithOnStateChange(func(_ string, from, to breaker.State) { ch <- change{from, to} })
}

func expect(t *testing.T, ctx context.Context, ch <-chan change, want string) {
	t.Helper()
	select {
	case c := <-ch:
		if c.String() != want {
			t.Fatalf("state change %s; want %s", c, want)
		}
	case <-ctx.Done():
		t.Fatalf("timed out waiting for %s", want)
	}
}

// flaky wraps a transport: while failing is set, sends fail with the
// error in fail, without reaching the broker. It counts sends that reach
// it, messages received and dead letters sent.
type flaky struct {
	transport.Transport
	failing     atomic.Bool
	fail        error
	sends       atomic.Int32
	received    atomic.Int32
	deadLetters atomic.Int32
}

func (f *flaky) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	f.sends.Add(1)
	if f.failing.Load() {
		return f.fail
	}
	if strings.HasSuffix(to.Name, ".dlq") {
		f.deadLetters.Add(int32(len(msgs)))
	}
	return f.Transport.Send(ctx, to, msgs)
}

func (f *flaky) Subscribe(ctx context.Context, from transport.Address, group string, o transport.SubscribeOptions) (transport.Subscription, error) {
	ts, err := f.Transport.Subscribe(ctx, from, group, o)
	if err != nil {
		return nil, err
	}
	return &countingSub{Subscription: ts, n: &f.received}, nil
}

type countingSub struct {
	transport.Subscription
	n *atomic.Int32
}

func (s *countingSub) Receive(ctx context.Context, max int) ([]*transport.Message, error) {
	msgs, err := s.Subscription.Receive(ctx, max)
	s.n.Add(int32(len(msgs)))
	return msgs, err
}

func newFlaky(t *testing.T) *flaky {
	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	return &flaky{Transport: b.Transport(), fail: fmt.Errorf("%w: connection refused", transport.ErrUnavailable)}
}

// TestSendFailsFastAndRecovers: a broker that keeps failing opens the
// breaker; sends then fail fast with ErrOpen without reaching it; after
// the open timeout a failing probe reopens it, and a succeeding one
// closes it.
func TestSendFailsFastAndRecovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const openTimeout = 50 * time.Millisecond
	ch, onChange := changes()
	mw, err := breaker.Send(breaker.WithFailures(3), breaker.WithOpenTimeout(openTimeout), onChange)
	if err != nil {
		t.Fatal(err)
	}
	f := newFlaky(t)
	f.failing.Store(true)
	c, err := messaging.New(f, messaging.WithSendMiddleware(mw))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	publish := func() error { return c.Publish(ctx, "orders", &messaging.Message{Body: []byte("x")}) }

	for i := range 3 {
		if err := publish(); !errors.Is(err, transport.ErrUnavailable) || errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("send %d: %v; want the broker's error", i, err)
		}
	}
	expect(t, ctx, ch, "closed->open")
	for range 10 {
		err := publish()
		var oe *breaker.OpenError
		if !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, gobreaker.ErrOpenState) ||
			!errors.Is(err, messaging.ErrUnavailable) || !errors.As(err, &oe) || oe.Name != "send" {
			t.Fatalf("while open: %v; want ErrOpen", err)
		}
	}
	if n := f.sends.Load(); n != 3 {
		t.Fatalf("%d sends reached the broker; want 3 (the open breaker fails fast)", n)
	}

	// openTimeout is the breaker's setting: after it, the next send is a
	// probe. The broker still fails: open again.
	probe := func() error {
		for {
			<-time.After(openTimeout)
			if err := publish(); !errors.Is(err, breaker.ErrOpen) {
				return err
			}
		}
	}
	if err := probe(); !errors.Is(err, transport.ErrUnavailable) {
		t.Fatalf("probe: %v; want the broker's error", err)
	}
	expect(t, ctx, ch, "open->half-open")
	expect(t, ctx, ch, "half-open->open")
	f.failing.Store(false)
	if err := probe(); err != nil {
		t.Fatalf("probe after recovery: %v", err)
	}
	expect(t, ctx, ch, "open->half-open")
	expect(t, ctx, ch, "half-open->closed")
	if n := f.sends.Load(); n != 5 {
		t.Fatalf("%d sends reached the broker; want 5 (3 failures, 2 probes)", n)
	}
	if err := publish(); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestSendCountsOnlyBrokerFailures: errors that show the broker answered
// count as successes; cancellation is not counted.
func TestSendCountsOnlyBrokerFailures(t *testing.T) {
	ch, onChange := changes()
	mw, err := breaker.Send(breaker.WithFailures(2), breaker.WithOpenTimeout(time.Minute), onChange)
	if err != nil {
		t.Fatal(err)
	}
	var next error
	send := mw(func(context.Context, transport.Address, []*transport.Message) error { return next })
	ctx := context.Background()
	for _, e := range []error{
		fmt.Errorf("%w: bad", messaging.ErrInvalid),
		fmt.Errorf("%w: big", messaging.ErrMessageTooLarge),
		fmt.Errorf("%w: no queue", transport.ErrNotFound),
		context.Canceled,
	} {
		next = errors.New("broker down")
		send(ctx, transport.Topic("t"), nil) // one failure
		next = e
		for range 3 {
			if err := send(ctx, transport.Topic("t"), nil); !errors.Is(err, e) {
				t.Fatalf("got %v; want %v", err, e)
			}
		}
		if e != context.Canceled {
			continue
		}
		// Cancellation neither resets nor adds: one more failure trips.
		next = errors.New("broker down")
		send(ctx, transport.Topic("t"), nil)
		if err := send(ctx, transport.Topic("t"), nil); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("after two failures around cancellations: %v; want ErrOpen", err)
		}
	}
	select {
	case c := <-ch:
		if c.String() != "closed->open" {
			t.Fatalf("state change %s", c)
		}
	default:
		t.Fatal("the breaker never opened")
	}
	if len(ch) != 0 {
		t.Fatalf("%d more state changes", len(ch))
	}
}

// TestHandlerPausesAndRecovers: a handler that keeps failing opens the
// breaker; the subscription then pauses (no handler call, no dead letter,
// no fetch beyond its in-flight slots) until the open timeout passes and
// a probe succeeds.
func TestHandlerPausesAndRecovers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const failures, inFlight, messages = 3, 2, 6
	f := newFlaky(t)
	c, err := messaging.New(f, messaging.WithSubscribeDefaults(messaging.WithRetry(messaging.RetryPolicy{
		MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Multiplier: 1,
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var calls atomic.Int32
	type snapshot struct{ calls, received, deadLetters int32 }
	atHalfOpen := make(chan snapshot, 10)
	ch := make(chan change, 100)
	mw, err := breaker.Handler(breaker.WithFailures(failures), breaker.WithOpenTimeout(100*time.Millisecond),
		breaker.WithOnStateChange(func(_ string, from, to breaker.State) {
			if to == breaker.StateHalfOpen {
				atHalfOpen <- snapshot{calls.Load(), f.received.Load(), f.deadLetters.Load()}
			}
			ch <- change{from, to}
		}))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	handled := map[string]bool{}
	allHandled := make(chan struct{})
	if _, err := c.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m *messaging.Message) error {
		if calls.Add(1) <= failures {
			return errors.New("database down")
		}
		mu.Lock()
		defer mu.Unlock()
		handled[m.ID] = true
		if len(handled) == messages {
			close(allHandled)
		}
		return nil
	}, messaging.WithMiddleware(mw), messaging.WithMaxInFlight(inFlight)); err != nil {
		t.Fatal(err)
	}
	for i := range messages {
		if err := c.Publish(ctx, "orders", &messaging.Message{ID: fmt.Sprint("m", i)}); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, ctx, ch, "closed->open")
	var s snapshot
	select {
	case s = <-atHalfOpen:
	case <-ctx.Done():
		t.Fatal("the breaker never half-opened")
	}
	// While open: not one handler call beyond the failures that tripped
	// it (though the retry policy allows more), no dead letter (4
	// attempts, and one message failed up to 3 times), and no fetch
	// beyond the in-flight slots the paused calls hold.
	if s.calls != failures || s.deadLetters != 0 || s.received > inFlight || s.received < 1 {
		t.Fatalf("while open: %d handler calls (want %d), %d dead letters (want 0), %d received (want 1..%d)",
			s.calls, failures, s.deadLetters, s.received, inFlight)
	}
	expect(t, ctx, ch, "open->half-open")
	expect(t, ctx, ch, "half-open->closed")
	select {
	case <-allHandled:
	case <-ctx.Done():
		t.Fatal("messages not handled after recovery")
	}
	if n := calls.Load(); n != failures+messages {
		t.Fatalf("%d handler calls; want %d", n, failures+messages)
	}
	if n := f.deadLetters.Load(); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

// TestHandlerPauseHonoursContext: a call paused on an open breaker
// returns when its context ends, with an error matching ErrOpen and the
// context's error.
func TestHandlerPauseHonoursContext(t *testing.T) {
	mw, err := breaker.Handler(breaker.WithFailures(1), breaker.WithOpenTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	h := mw(func(context.Context, *messaging.Message) error { calls++; return errors.New("down") })
	h(context.Background(), &messaging.Message{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h(ctx, &messaging.Message{}); !errors.Is(err, breaker.ErrOpen) || !errors.Is(err, context.Canceled) {
		t.Fatalf("paused call: %v; want ErrOpen and context.Canceled", err)
	}
	if calls != 1 {
		t.Fatalf("%d handler calls; want 1", calls)
	}
}

// TestHandlerNeutralErrors: permanent errors and dedup's busy errors do
// not trip the handler breaker; a custom rule replaces the default.
func TestHandlerNeutralErrors(t *testing.T) {
	ch, onChange := changes()
	mw, err := breaker.Handler(breaker.WithFailures(1), onChange)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, e := range []error{messaging.Permanent(errors.New("bad message")), fmt.Errorf("%w", dedup.ErrBusy)} {
		mw(func(context.Context, *messaging.Message) error { return e })(ctx, &messaging.Message{})
	}
	if len(ch) != 0 {
		t.Fatalf("state changed: %s", <-ch)
	}
	mw2, _ := breaker.Handler(breaker.WithFailures(1), onChange, breaker.WithIsFailure(func(error) bool { return true }))
	mw2(func(context.Context, *messaging.Message) error { return messaging.Permanent(errors.New("x")) })(ctx, &messaging.Message{})
	if len(ch) != 1 {
		t.Fatal("custom rule did not trip the breaker")
	}
}

func TestInvalidOptions(t *testing.T) {
	for name, o := range map[string]breaker.Option{
		"failures": breaker.WithFailures(0),
		"timeout":  breaker.WithOpenTimeout(-time.Second),
		"probes":   breaker.WithHalfOpenProbes(0),
		"rule":     breaker.WithIsFailure(nil),
		"logger":   breaker.WithLogger(nil),
	} {
		if _, err := breaker.Send(o); !errors.Is(err, messaging.ErrInvalid) {
			t.Errorf("Send %s: %v; want ErrInvalid", name, err)
		}
		if _, err := breaker.Handler(o); !errors.Is(err, messaging.ErrInvalid) {
			t.Errorf("Handler %s: %v; want ErrInvalid", name, err)
		}
	}
}
