package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
)

// TestBatchOptionsInvalid: bad batch options are ErrInvalid, naming the
// option (R135).
func TestBatchOptionsInvalid(t *testing.T) {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := func(context.Context, []*messaging.Message) error { return nil }
	for _, tc := range []struct {
		name string
		opts []messaging.SubscribeOption
		want string
	}{
		{"negative size", []messaging.SubscribeOption{messaging.WithBatchSize(-1)}, "batch size is -1"},
		{"size above max in flight", []messaging.SubscribeOption{messaging.WithBatchSize(65)}, "batch size 65 is above max in flight 64"},
		{"size above explicit max in flight", []messaging.SubscribeOption{messaging.WithMaxInFlight(4), messaging.WithBatchSize(5)}, "above max in flight 4"},
		{"negative wait", []messaging.SubscribeOption{messaging.WithBatchWait(-time.Second)}, "batch wait is -1s"},
		{"nil option", []messaging.SubscribeOption{nil}, "option 1 of 1 is nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.SubscribeBatch(ctx, "t", "g", h, tc.opts...)
			if !errors.Is(err, messaging.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("SubscribeBatch: %v; want ErrInvalid saying %q", err, tc.want)
			}
			_, err = c.ListenBatch(ctx, "r", h, tc.opts...)
			if !errors.Is(err, messaging.ErrInvalid) {
				t.Errorf("ListenBatch: %v; want ErrInvalid", err)
			}
		})
	}
	if _, err := c.SubscribeBatch(ctx, "t", "g", nil); !errors.Is(err, messaging.ErrInvalid) {
		t.Errorf("nil batch handler: %v; want ErrInvalid", err)
	}
	if _, err := c.ListenBatch(ctx, "r", nil); !errors.Is(err, messaging.ErrInvalid) {
		t.Errorf("nil batch handler (ListenBatch): %v; want ErrInvalid", err)
	}
	// Zero fields take the defaults: a batch size of 10 capped at a lower
	// MaxInFlight is valid.
	s, err := c.SubscribeBatch(ctx, "t", "g", h, messaging.WithMaxInFlight(3), messaging.WithBatchSize(0), messaging.WithBatchWait(0))
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	s.Close()
	// Other subscriptions ignore batch options (client-wide defaults).
	s, err = c.Subscribe(ctx, "t", "g2", func(context.Context, *messaging.Message) error { return nil }, messaging.WithBatchSize(1000))
	if err != nil {
		t.Fatalf("Subscribe with a batch option: %v", err)
	}
	s.Close()
}

// TestBatchErrorText: BatchError names the failed messages and unwraps to
// their errors.
func TestBatchErrorText(t *testing.T) {
	var be messaging.BatchError
	if be.Err() != nil {
		t.Fatal("empty BatchError.Err() is not nil")
	}
	perm := messaging.Permanent(errors.New("bad row"))
	be.Add(&messaging.Message{ID: "a"}, perm)
	be.Add(&messaging.Message{ID: "b"}, nil)
	err := be.Err()
	if got := err.Error(); got != "switchboard: 2 messages of the batch failed: a: bad row; b: switchboard: named as failed in a BatchError" {
		t.Errorf("text %q", got)
	}
	if !errors.Is(err, perm) || !messaging.IsPermanent(err) {
		t.Error("BatchError does not unwrap to its messages' errors")
	}
}

// TestBatchAckedInOneCall: the messages of a batch that succeeded are
// acknowledged in one call to the transport (R127), which the adapters
// turn into one DeleteMessageBatch per 10 (SQS), cumulative basic.acks
// (RabbitMQ) or one offset commit (Kafka).
func TestBatchAckedInOneCall(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	l := &callLog{Transport: b.Transport()}
	c := newClient(t, l)
	handled := make(chan int, 1)
	s, err := c.SubscribeBatch(ctx, "t", "g", func(_ context.Context, msgs []*messaging.Message) error {
		handled <- len(msgs)
		return nil
	}, messaging.WithBatchSize(10), messaging.WithBatchWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*messaging.Message
	for i := range 10 {
		msgs = append(msgs, &messaging.Message{Key: fmt.Sprint(i), Body: []byte("x")})
	}
	if err := c.Publish(ctx, "t", msgs...); err != nil {
		t.Fatal(err)
	}
	if n := <-handled; n != 10 {
		t.Fatalf("batch of %d; want 10", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Equal(l.calls, []string{"ack 10", "close"}) {
		t.Errorf("subscription calls %v; want [ack 10 close]", l.calls)
	}
}

// batchCallRec is one call of a batch handler: its bodies and attempts.
type batchCallRec struct {
	bodies   []string
	attempts []int
}

// subscribeBatchRec subscribes a batch handler running fn on a fresh
// in-memory client and returns its calls, as a channel.
func subscribeBatchRec(t *testing.T, fn func(msgs []*messaging.Message) error, opts ...messaging.SubscribeOption) (*messaging.Client, <-chan batchCallRec) {
	t.Helper()
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	c := newClient(t, b.Transport(), messaging.WithSubscribeDefaults(messaging.WithRetry(messaging.RetryPolicy{InitialBackoff: time.Millisecond})))
	calls := make(chan batchCallRec, 100)
	if _, err := c.SubscribeBatch(ctx, "t", "g", func(_ context.Context, msgs []*messaging.Message) error {
		var rec batchCallRec
		for _, m := range msgs {
			rec.bodies = append(rec.bodies, string(m.Body))
			rec.attempts = append(rec.attempts, m.Attempt)
		}
		calls <- rec
		return fn(msgs)
	}, opts...); err != nil {
		t.Fatal(err)
	}
	return c, calls
}

// TestBatchErrorNamingNothingFailsWholeBatch: a BatchError that names no
// message of the batch, and a panic, fail the whole batch (R128, R129).
func TestBatchErrorNamingNothingFailsWholeBatch(t *testing.T) {
	for name, fail := range map[string]func() error{
		"foreign message": func() error {
			var be messaging.BatchError
			be.Add(&messaging.Message{ID: "not-in-batch"}, errors.New("x"))
			return &be
		},
		"panic": func() error { panic("boom") },
	} {
		t.Run(name, func(t *testing.T) {
			c, calls := subscribeBatchRec(t, func(msgs []*messaging.Message) error {
				if msgs[0].Attempt == 1 {
					return fail()
				}
				return nil
			}, messaging.WithBatchSize(2), messaging.WithBatchWait(time.Minute))
			if err := c.Publish(testCtx(t), "t", &messaging.Message{Key: "a", Body: []byte("a")}, &messaging.Message{Key: "b", Body: []byte("b")}); err != nil {
				t.Fatal(err)
			}
			first, second := <-calls, <-calls
			if len(first.bodies) != 2 || len(second.bodies) != 2 || !slices.Equal(second.attempts, []int{2, 2}) {
				t.Errorf("calls %+v then %+v; want the whole batch again with attempts [2 2]", first, second)
			}
		})
	}
}

// TestBatchKeyOrderingOff: without key ordering a batch holds several
// messages of one key; with it, one per key (R131).
func TestBatchKeyOrderingOff(t *testing.T) {
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint("ordering=", on), func(t *testing.T) {
			wait := time.Minute // off: the batch fills up
			if on {
				wait = 20 * time.Millisecond // on: each batch holds one message
			}
			c, calls := subscribeBatchRec(t, func([]*messaging.Message) error { return nil },
				messaging.WithBatchSize(3), messaging.WithBatchWait(wait), messaging.WithKeyOrdering(on))
			var msgs []*messaging.Message
			for i := range 3 {
				msgs = append(msgs, &messaging.Message{Key: "k", Body: []byte(fmt.Sprint(i))})
			}
			if err := c.Publish(testCtx(t), "t", msgs...); err != nil {
				t.Fatal(err)
			}
			var got []string
			for len(got) < 3 {
				call := <-calls
				if on && len(call.bodies) != 1 {
					t.Errorf("key ordering on: a batch of %v holds one key twice", call.bodies)
				}
				if !on && len(call.bodies) != 3 {
					t.Errorf("key ordering off: batch %v; want the 3 messages of the key together", call.bodies)
				}
				got = append(got, call.bodies...)
			}
			if !slices.Equal(got, []string{"0", "1", "2"}) {
				t.Errorf("handled %v; want [0 1 2]", got)
			}
		})
	}
}

// TestBatchManyKeysRandomFailures: 1,000 messages of 40 keys, a third of
// the calls failing some of their messages: every message is handled, each
// key's messages succeed in publication order, no batch holds a key twice,
// and at most MaxInFlight messages are in calls at once (R129, R131, R132).
func TestBatchManyKeysRandomFailures(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	c := newClient(t, b.Transport(), messaging.WithSubscribeDefaults(messaging.WithRetry(messaging.RetryPolicy{
		MaxAttempts: 100, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})))
	const keys, per, inFlight = 40, 25, 24
	var mu sync.Mutex
	acked := map[string][]int{}
	running, maxRunning, calls := 0, 0, 0
	done := make(chan struct{})
	total := 0
	_, err := c.SubscribeBatch(ctx, "t", "g", func(_ context.Context, msgs []*messaging.Message) error {
		mu.Lock()
		calls++
		fail := calls%3 == 0
		running += len(msgs)
		maxRunning = max(maxRunning, running)
		seen := map[string]bool{}
		var be messaging.BatchError
		for i, m := range msgs {
			if seen[m.Key] {
				t.Errorf("a batch holds key %s twice", m.Key)
			}
			seen[m.Key] = true
			if fail && i%2 == 0 {
				be.Add(m, errors.New("transient"))
				continue
			}
			var n int
			fmt.Sscan(string(m.Body), &n)
			acked[m.Key] = append(acked[m.Key], n)
			if total++; total == keys*per {
				close(done)
			}
		}
		running -= len(msgs)
		mu.Unlock()
		return be.Err()
	}, messaging.WithBatchSize(8), messaging.WithBatchWait(2*time.Millisecond), messaging.WithMaxInFlight(inFlight))
	if err != nil {
		t.Fatal(err)
	}
	for i := range per {
		var msgs []*messaging.Message
		for k := range keys {
			msgs = append(msgs, &messaging.Message{Key: fmt.Sprint("k", k), Body: []byte(fmt.Sprint(i))})
		}
		if err := c.Publish(ctx, "t", msgs...); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("not every message was handled")
	}
	mu.Lock()
	defer mu.Unlock()
	for k, got := range acked {
		if !slices.IsSorted(got) || len(got) != per {
			t.Errorf("key %s succeeded in order %v", k, got)
		}
	}
	if maxRunning > inFlight {
		t.Errorf("%d messages in calls at once; MaxInFlight is %d", maxRunning, inFlight)
	}
}

// TestBatchMiddlewareRefused: middleware given to a batch subscription
// would silently do nothing (R135): it is ErrInvalid.
func TestBatchMiddlewareRefused(t *testing.T) {
	ctx := testCtx(t)
	b, _ := inmem.NewBroker()
	c := newClient(t, b.Transport())
	mw := func(next messaging.Handler) messaging.Handler { return next }
	h := func(context.Context, []*messaging.Message) error { return nil }
	if _, err := c.SubscribeBatch(ctx, "t", "g", h, messaging.WithMiddleware(mw)); !errors.Is(err, messaging.ErrInvalid) {
		t.Fatalf("SubscribeBatch with WithMiddleware: err = %v, want ErrInvalid", err)
	}
	if _, err := c.ListenBatch(ctx, "r", h, messaging.WithMiddleware(mw)); !errors.Is(err, messaging.ErrInvalid) {
		t.Fatalf("ListenBatch with WithMiddleware: err = %v, want ErrInvalid", err)
	}
}
