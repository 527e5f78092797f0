package dedup_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/dedup/storetest"
	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fastRetry retries quickly and often: Busy attempts are retried until the
// claim holder finishes.
var fastRetry = messaging.WithRetry(messaging.RetryPolicy{
	MaxAttempts: 1000, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Multiplier: 2,
})

// ackSpy wraps a transport and reports every acknowledgement, by message
// ID, on acked. IDs in dropFirstAck have their first ack turned into a
// nack, as if the ack were lost: the broker redelivers the message.
type ackSpy struct {
	transport.Transport
	acked chan string

	mu           sync.Mutex
	dropFirstAck map[string]bool
}

func newAckSpy(t transport.Transport, drop ...string) *ackSpy {
	s := &ackSpy{Transport: t, acked: make(chan string, 100), dropFirstAck: map[string]bool{}}
	for _, id := range drop {
		s.dropFirstAck[id] = true
	}
	return s
}

func (s *ackSpy) Subscribe(ctx context.Context, from transport.Address, group string, o transport.SubscribeOptions) (transport.Subscription, error) {
	ts, err := s.Transport.Subscribe(ctx, from, group, o)
	if err != nil {
		return nil, err
	}
	return &spySub{Subscription: ts, spy: s, ids: map[any]string{}}, nil
}

type spySub struct {
	transport.Subscription
	spy *ackSpy
	mu  sync.Mutex
	ids map[any]string
}

func (s *spySub) Receive(ctx context.Context, max int) ([]*transport.Message, error) {
	msgs, err := s.Subscription.Receive(ctx, max)
	s.mu.Lock()
	for _, m := range msgs {
		s.ids[m.AckID] = m.ID
	}
	s.mu.Unlock()
	return msgs, err
}

func (s *spySub) Ack(ctx context.Context, ids []any) error {
	var ack, nack []any
	var acked []string
	s.mu.Lock()
	s.spy.mu.Lock()
	for _, a := range ids {
		id := s.ids[a]
		delete(s.ids, a)
		if s.spy.dropFirstAck[id] {
			delete(s.spy.dropFirstAck, id)
			nack = append(nack, a)
			continue
		}
		ack = append(ack, a)
		acked = append(acked, id)
	}
	s.spy.mu.Unlock()
	s.mu.Unlock()
	if len(nack) > 0 {
		if err := s.Subscription.Nack(ctx, nack); err != nil {
			return err
		}
	}
	err := s.Subscription.Ack(ctx, ack)
	for _, id := range acked {
		s.spy.acked <- id
	}
	return err
}

func open(t *testing.T, tr transport.Transport) *messaging.Client {
	t.Helper()
	c, err := messaging.New(tr, messaging.WithSubscribeDefaults(fastRetry))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newBroker(t *testing.T) *inmem.Broker {
	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recv[T any](t *testing.T, ctx context.Context, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatal("timed out waiting")
		panic("unreachable")
	}
}

func mustMiddleware(t *testing.T, s dedup.Store, opts ...dedup.Option) messaging.Middleware {
	t.Helper()
	mw, err := dedup.Middleware(s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return mw
}

// TestDuplicatesHandledOnce publishes one ID twice and loses the ack of
// another, so that the broker redelivers it: every handler runs once, and
// every delivery is acknowledged.
func TestDuplicatesHandledOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spy := newAckSpy(newBroker(t).Transport(), "redelivered")
	c := open(t, spy)
	var mu sync.Mutex
	calls := map[string]int{}
	mw := mustMiddleware(t, dedup.NewMemoryStore(dedup.MemoryOptions{}))
	if _, err := c.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		calls[m.ID]++
		mu.Unlock()
		return nil
	}, messaging.WithMiddleware(mw)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"twice", "twice", "redelivered", "once"} {
		if err := c.Publish(ctx, "orders", &messaging.Message{ID: id, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	acked := map[string]int{}
	for range 4 { // twice ×2, redelivered (after its lost ack), once
		acked[recv(t, ctx, spy.acked)]++
	}
	if acked["twice"] != 2 || acked["redelivered"] != 1 || acked["once"] != 1 {
		t.Fatalf("acks %v", acked)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range []string{"twice", "redelivered", "once"} {
		if calls[id] != 1 {
			t.Errorf("handler ran %d times for %s; want 1 (all: %v)", calls[id], id, calls)
		}
	}
}

// TestConcurrentConsumers delivers one ID to two listeners of a queue at
// once: one handles it while the other finds it Busy, retries, finds it
// Done and acknowledges it.
func TestConcurrentConsumers(t *testing.T) {
	storetest.ConcurrentConsumers(t, dedup.NewMemoryStore(dedup.MemoryOptions{}), "")
}

// TestFailureReleasesClaim: a failing attempt releases its claim, so the
// retry runs the handler; success then makes duplicates Done.
func TestFailureReleasesClaim(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spy := newAckSpy(newBroker(t).Transport())
	c := open(t, spy)
	var calls atomic.Int32
	mw := mustMiddleware(t, dedup.NewMemoryStore(dedup.MemoryOptions{}))
	if _, err := c.Subscribe(ctx, "t", "g", func(ctx context.Context, m *messaging.Message) error {
		if calls.Add(1) < 3 {
			return errors.New("transient")
		}
		return nil
	}, messaging.WithMiddleware(mw)); err != nil {
		t.Fatal(err)
	}
	c.Publish(ctx, "t", &messaging.Message{ID: "x"})
	recv(t, ctx, spy.acked)
	c.Publish(ctx, "t", &messaging.Message{ID: "x"})
	recv(t, ctx, spy.acked)
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler ran %d times; want 3 (2 failures, 1 success, duplicate skipped)", n)
	}
}

type failingStore struct{ dedup.Store }

var errDown = errors.New("store down")

func (failingStore) Begin(context.Context, string, string, time.Duration) (dedup.State, error) {
	return 0, errDown
}

func TestStoreErrors(t *testing.T) {
	ctx := context.Background()
	m := &messaging.Message{ID: "1", ReceivedFrom: "t"}
	ran := false
	h := func(context.Context, *messaging.Message) error { ran = true; return nil }

	closed := mustMiddleware(t, failingStore{})
	if err := closed(h)(ctx, m); !errors.Is(err, errDown) || ran {
		t.Fatalf("fail closed: err %v, ran %v; want the store's error and no handling", err, ran)
	}
	open := mustMiddleware(t, failingStore{}, dedup.WithFailOpen(true))
	if err := open(h)(ctx, m); err != nil || !ran {
		t.Fatalf("fail open: err %v, ran %v; want handling", err, ran)
	}
}

func TestKeyAndNamespace(t *testing.T) {
	ctx := context.Background()
	store := dedup.NewMemoryStore(dedup.MemoryOptions{})
	var calls int
	h := func(context.Context, *messaging.Message) error { calls++; return nil }
	byOrder := mustMiddleware(t, store, dedup.WithKey(func(m *messaging.Message) string { return m.Header("order") }))(h)
	other := mustMiddleware(t, store, dedup.WithNamespace("shipping"), dedup.WithKey(func(m *messaging.Message) string { return m.Header("order") }))(h)
	for _, id := range []string{"a", "b"} { // different IDs, same order
		byOrder(ctx, &messaging.Message{ID: id, Headers: map[string]string{"order": "42"}})
	}
	other(ctx, &messaging.Message{ID: "c", Headers: map[string]string{"order": "42"}})
	byOrder(ctx, &messaging.Message{ID: "d"}) // empty key: not deduplicated
	byOrder(ctx, &messaging.Message{ID: "d"})
	if calls != 4 {
		t.Fatalf("handler ran %d times; want 4", calls)
	}
}

func TestPanicReleasesClaim(t *testing.T) {
	ctx := context.Background()
	store := dedup.NewMemoryStore(dedup.MemoryOptions{})
	mw := mustMiddleware(t, store)
	m := &messaging.Message{ID: "p", ReceivedFrom: "t"}
	func() {
		defer func() { recover() }()
		mw(func(context.Context, *messaging.Message) error { panic("boom") })(ctx, m)
	}()
	if st, _ := store.Begin(ctx, "t:p", "other", time.Minute); st != dedup.Claimed {
		t.Fatalf("after a panic, Begin = %v; want claimed", st)
	}
}

func TestInvalidOptions(t *testing.T) {
	s := dedup.NewMemoryStore(dedup.MemoryOptions{})
	for name, opts := range map[string][]dedup.Option{
		"lease":     {dedup.WithLease(0)},
		"retention": {dedup.WithRetention(-time.Second)},
		"key":       {dedup.WithKey(nil)},
		"logger":    {dedup.WithLogger(nil)},
	} {
		if _, err := dedup.Middleware(s, opts...); !errors.Is(err, messaging.ErrInvalid) {
			t.Errorf("%s: err %v; want ErrInvalid", name, err)
		}
	}
	if _, err := dedup.Middleware(nil); !errors.Is(err, messaging.ErrInvalid) {
		t.Errorf("nil store: err %v", err)
	}
}

func TestMemoryStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) dedup.Store { return dedup.NewMemoryStore(dedup.MemoryOptions{}) })
}

// clock is a manual clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestMemoryStoreExpiry(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: time.Unix(1000, 0)}
	s := dedup.NewMemoryStore(dedup.MemoryOptions{Now: clk.Now})
	s.Begin(ctx, "claim", "a", time.Second)
	s.Complete(ctx, "done", time.Hour)
	clk.Advance(999 * time.Millisecond)
	if st, _ := s.Begin(ctx, "claim", "b", time.Second); st != dedup.Busy {
		t.Fatalf("claim before its lease ends: %v", st)
	}
	clk.Advance(time.Millisecond)
	if st, _ := s.Begin(ctx, "claim", "b", time.Second); st != dedup.Claimed {
		t.Fatalf("claim after its lease: %v; want claimed", st)
	}
	if st, _ := s.Begin(ctx, "done", "b", time.Second); st != dedup.Done {
		t.Fatalf("done within retention: %v", st)
	}
	clk.Advance(time.Hour)
	if st, _ := s.Begin(ctx, "done", "b", time.Second); st != dedup.Claimed {
		t.Fatalf("done after retention: %v; want claimed", st)
	}
}

func TestMemoryStoreBounded(t *testing.T) {
	ctx := context.Background()
	clk := &clock{now: time.Unix(1000, 0)}
	s := dedup.NewMemoryStore(dedup.MemoryOptions{MaxEntries: 3, Now: clk.Now})
	for _, k := range []string{"k1", "k2", "k3"} {
		s.Complete(ctx, k, time.Hour)
		clk.Advance(time.Second)
	}
	s.Complete(ctx, "k1", time.Hour) // rewritten: now the newest
	s.Complete(ctx, "k4", time.Hour) // evicts the oldest written: k2
	if n := s.Len(); n != 3 {
		t.Fatalf("len %d; want 3", n)
	}
	for k, want := range map[string]dedup.State{"k1": dedup.Done, "k3": dedup.Done, "k4": dedup.Done} {
		if st, _ := s.Begin(ctx, k, "x", time.Minute); st != want {
			t.Fatalf("%s: %v; want %v", k, st, want)
		}
	}
	// Expired entries go before live ones, however recent.
	s2 := dedup.NewMemoryStore(dedup.MemoryOptions{MaxEntries: 2, Now: clk.Now})
	s2.Complete(ctx, "old", time.Hour)
	s2.Begin(ctx, "short", "t", time.Second)
	clk.Advance(2 * time.Second)
	s2.Complete(ctx, "new", time.Hour)
	if st, _ := s2.Begin(ctx, "old", "x", time.Minute); st != dedup.Done {
		t.Fatalf("old: %v; want done (the expired claim should have been evicted)", st)
	}
	if n := s2.Len(); n != 2 {
		t.Fatalf("len %d", n)
	}
}
