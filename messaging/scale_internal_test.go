package messaging

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
)

// scaleSubscription subscribes to topic on a fresh in-memory broker.
func scaleSubscription(t *testing.T, h Handler, opts ...SubscribeOption) (*Client, *Subscription) {
	t.Helper()
	br, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(br.Transport())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := c.Subscribe(t.Context(), "t", "g", h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// A key's lane (the messages queued behind the one being handled) is
// dropped when the key goes idle: after 2,000 distinct keys, several
// messages each, none is left once every worker has finished.
func TestKeyLanesFreedWhenKeysGoIdle(t *testing.T) {
	const keys, perKey = 2000, 3
	var handled atomic.Int64
	all := make(chan struct{})
	c, s := scaleSubscription(t, func(context.Context, *Message) error {
		if handled.Add(1) == keys*perKey {
			close(all)
		}
		return nil
	}, WithMaxInFlight(32))
	var msgs []*Message
	for r := range perKey {
		for k := range keys {
			msgs = append(msgs, &Message{Key: fmt.Sprint("k", k), Body: []byte{byte(r)}})
		}
	}
	if err := c.Publish(t.Context(), "t", msgs...); err != nil {
		t.Fatal(err)
	}
	<-all
	// Close waits for the workers: every one has run next() for its last
	// message, so every lane it held is gone.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	if n := len(s.lanes); n != 0 {
		t.Fatalf("%d key lanes left after every key went idle; want 0", n)
	}
}

// Workers stop after workerIdleTimeout without work: an idle
// subscription keeps the worker holding the fetch turn and its acker, not
// one goroutine per message it held during a burst.
func TestIdleWorkersStop(t *testing.T) {
	const burst = 16
	var entered atomic.Int64
	allIn := make(chan struct{})
	release := make(chan struct{})
	var handled atomic.Int64
	all, again := make(chan struct{}), make(chan struct{})
	c, s := scaleSubscription(t, func(context.Context, *Message) error {
		if entered.Add(1) == burst {
			close(allIn)
		}
		<-release
		switch handled.Add(1) {
		case burst:
			close(all)
		case burst + 1:
			close(again)
		}
		return nil
	}, WithMaxInFlight(burst), WithKeyOrdering(false))
	msgs := make([]*Message, burst)
	for i := range msgs {
		msgs[i] = &Message{Body: []byte("x")}
	}
	if err := c.Publish(t.Context(), "t", msgs...); err != nil {
		t.Fatal(err)
	}
	<-allIn // burst handlers at once, and the holder of the fetch turn
	if n := s.workers.Load(); n != burst+1 {
		t.Fatalf("%d workers during the burst; want %d", n, burst+1)
	}
	close(release)
	<-all
	// Each worker stops workerIdleTimeout after its last message; give
	// them ten times that on a loaded machine.
	deadline := time.Now().Add(10 * workerIdleTimeout)
	for s.workers.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still running %s after the burst; want 1 (the holder of the fetch turn)", s.workers.Load(), 10*workerIdleTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The subscription still works: a new message starts a worker.
	if err := c.Publish(t.Context(), "t", &Message{Body: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	<-again
}
