package storetest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
)

// beginSpy reports every Begin outcome.
type beginSpy struct {
	dedup.Store
	begins chan dedup.State
}

func (s *beginSpy) Begin(ctx context.Context, key, token string, lease time.Duration) (dedup.State, error) {
	st, err := s.Store.Begin(ctx, key, token, lease)
	if err == nil {
		s.begins <- st
	}
	return st, err
}

// ConcurrentConsumers delivers one message ID, twice, to two listeners of
// a queue of the in-memory broker at once, through dedup.Middleware over
// store: one listener handles it while the other finds it Busy, retries,
// and finds it Done, so the handler runs once. namespace isolates the
// keys of this run in a shared store.
func ConcurrentConsumers(t *testing.T, store dedup.Store, namespace string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	c, err := messaging.New(b.Transport(), messaging.WithSubscribeDefaults(messaging.WithRetry(messaging.RetryPolicy{
		MaxAttempts: 1000, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Multiplier: 2,
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	spy := &beginSpy{Store: store, begins: make(chan dedup.State, 1000)}
	mw, err := dedup.Middleware(spy, dedup.WithNamespace(namespace))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	release := make(chan struct{})
	h := func(ctx context.Context, m *messaging.Message) error {
		calls.Add(1)
		<-release
		return nil
	}
	// One slot each: the listener holding the first delivery cannot take
	// the second, so the other listener does.
	for range 2 {
		if _, err := c.Listen(ctx, "jobs", h, messaging.WithMiddleware(mw), messaging.WithMaxInFlight(1)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := c.Notify(ctx, "jobs", &messaging.Message{ID: "job-1"}); err != nil {
			t.Fatal(err)
		}
	}
	next := func() dedup.State {
		t.Helper()
		select {
		case st := <-spy.begins:
			return st
		case <-ctx.Done():
			t.Fatal("timed out waiting for Begin")
			return 0
		}
	}
	// The two outcomes may be reported in either order, and the busy
	// one retried meanwhile.
	claimed, busy := 0, 0
	for claimed == 0 || busy == 0 {
		switch st := next(); st {
		case dedup.Claimed:
			claimed++
		case dedup.Busy:
			busy++
		default:
			t.Fatalf("Begin %v before any delivery was handled", st)
		}
		if claimed > 1 {
			t.Fatal("two consumers claimed the same message")
		}
	}
	close(release)
	for {
		st := next()
		if st == dedup.Done {
			break // the duplicate is acknowledged
		}
		if st != dedup.Busy {
			t.Fatalf("Begin %v while the claim is held", st)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times; want 1", n)
	}
}
