package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// handoverCases are the Handover cases: graceful and hard handover of a
// group's messages between members, with exact attempt counts (R59–R61).
var handoverCases = []testCase{
	{"Handover", "GracefulDuringRetry", handoverGracefulDuringRetry},
	{"Handover", "GracefulQueuedBehindKey", handoverGracefulQueuedBehindKey},
	{"Handover", "HardCrashCountsOne", handoverHardCrashCountsOne},
	{"Handover", "RollingRestartsTransientFailure", handoverRollingRestarts},
}

// slowRetry waits 20 s before its first retry: a shutdown always meets the
// message waiting.
var slowRetry = messaging.RetryPolicy{MaxAttempts: 3, InitialBackoff: 20 * time.Second, MaxBackoff: 20 * time.Second, Multiplier: 1}

// fastRetry3 is FastRetry with 3 attempts.
var fastRetry3 = func() messaging.RetryPolicy { p := FastRetry; p.MaxAttempts = 3; return p }()

// handoverGracefulDuringRetry proves R59: a message released by a graceful
// shutdown while it waits for its retry counts as one delivery. The next
// member sees attempt 2; with MaxAttempts 3 and a handler that always
// fails, the message is dead-lettered after exactly 3 handler calls across
// both members, and the envelope says 3.
func handoverGracefulDuringRetry(e *env) {
	topic, group := e.name("t"), e.name("g")
	dls := e.listenDeadLetters(e.client(), messaging.DeadLetterQueue(topic, group))
	a := newAttempts()
	failing := func(_ context.Context, m *messaging.Message) error {
		a.add(m)
		return fmt.Errorf("failing attempt %d", m.Attempt)
	}
	c1 := e.client()
	e.subscribe(c1, topic, group, failing, messaging.WithRetry(slowRetry))
	e.publish(e.client(), topic, msg("k", "m"))
	e.waitUntil("the first attempt", &a.notifier, func() bool { return len(a.of("m")) == 1 })
	if err := c1.Close(); err != nil { // the message waits 20 s for its retry
		e.Errorf("graceful shutdown during the retry wait: %v", err)
	}
	e.subscribe(e.client(), topic, group, failing, messaging.WithRetry(fastRetry3))
	dl := dls.await(e, "m")
	if got := a.of("m"); !slices.Equal(got, []int{1, 2, 3}) {
		e.Errorf("attempts across the two members: %v, want [1 2 3] (a graceful release counts one delivery)", got)
	}
	if dl.LastAttempt != 3 {
		e.Errorf("dead letter says %d attempts, want 3", dl.LastAttempt)
	}
}

// handoverGracefulQueuedBehindKey proves R60: messages a member holds
// queued behind their key when it shuts down gracefully go to the next
// member, in key order, each handled once more with its attempt raised by
// at most one; the message being handled is acknowledged, not handed over.
func handoverGracefulQueuedBehindKey(e *env) {
	topic, group := e.name("t"), e.name("g")
	// Declare the group, then publish while no member runs, so that the
	// first member receives the messages together.
	e.subscribe(e.client(), topic, group, func(context.Context, *messaging.Message) error { return nil }).Close()
	want := seq("m", 10)
	e.publish(e.client(), topic, msgsOf("k", want)...)

	ct := &countingTransport{Transport: e.transport()}
	c1 := e.clientOn(ct)
	started := make(chan struct{})
	r1 := &recorder{}
	e.subscribe(c1, topic, group, func(ctx context.Context, m *messaging.Message) error {
		r1.add(m)
		if string(m.Body) == "m0" {
			close(started)
			<-messaging.Draining(ctx) // runs until the shutdown begins, then succeeds
		}
		return nil
	})
	e.await("m0's handler to start", started)
	// The messages the member received wait behind m0. (SQS FIFO hands
	// out a group's next message only once the one in flight is settled:
	// there, nothing waits in the member.)
	e.Logf("handover: the member holds %d of the %d messages at its shutdown", ct.received.Load(), len(want))
	if err := c1.Close(); err != nil {
		e.Errorf("graceful shutdown: %v", err)
	}
	if got := r1.all(); len(got) != 1 {
		e.Errorf("the closing member handled %d messages, want only m0 (the others wait behind it)", len(got))
	}
	r2 := &recorder{}
	e.subscribe(e.client(), topic, group, r2.handle)
	e.awaitBodies(r2, want[1:]...)
	e.publish(e.client(), topic, msg("k", "barrier"))
	e.awaitBodies(r2, "barrier")
	var order []string
	for _, m := range r2.all() {
		b := string(m.Body)
		if b == "m0" {
			e.Errorf("m0, acknowledged by the first member, was handed over too")
		}
		if m.Attempt > 2 {
			e.Errorf("%s handed over with attempt %d, want at most 2", b, m.Attempt)
		}
		order = append(order, b)
	}
	wantOrder := append(slices.Clone(want[1:]), "barrier")
	if !e.orderedByKey() {
		// A transport that does not order by key (an opt-in mode,
		// R76) owes each message once more, in any order.
		slices.Sort(order)
		slices.Sort(wantOrder)
	}
	if !slices.Equal(order, wantOrder) {
		e.Errorf("the next member handled %v, want each once, in key order: %v", order, wantOrder)
	}
}

// handoverHardCrashCountsOne proves R61: a member that disappears without
// acknowledging (its connections cut, as when its process is killed)
// loses nothing, and its delivery counts one: the next member sees
// attempt 2.
func handoverHardCrashCountsOne(e *env) {
	topic, group := e.name("t"), e.name("g")
	f, faulty := e.faultyClients()
	c1 := faulty()
	held := make(chan struct{})
	var once sync.Once
	a := newAttempts()
	hold := e.gate() // never opened before the case ends: the member is gone
	e.subscribe(c1, topic, group, func(ctx context.Context, m *messaging.Message) error {
		a.add(m)
		once.Do(func() { close(held) })
		hold.wait(ctx)
		return nil
	})
	e.publish(e.client(), topic, msg("k", "m"))
	e.await("the first member to hold the message", held)
	f.Cut() // the member is gone: no ack, no release
	r := &recorder{}
	e.subscribe(e.client(), topic, group, r.handle)
	e.awaitBodies(r, "m")
	got := r.all()[0].Attempt
	if got != 2 {
		e.Errorf("after a hard crash the next member sees attempt %d, want 2 (one delivery lost with the crashed member)", got)
	}
	f.Restore()
}

// handoverRollingRestarts proves R59 through two rolling restarts: a
// message whose handler fails once, transiently, is released by a
// graceful shutdown during its retry wait, then by a second graceful
// shutdown while its handler runs (the handler gives up when the shutdown
// begins); the third member handles it with attempt 3, within MaxAttempts
// 3: it is not dead-lettered early.
func handoverRollingRestarts(e *env) {
	topic, group := e.name("t"), e.name("g")
	a := newAttempts()
	var calls atomic.Int32
	transient := func(ctx context.Context, m *messaging.Message) error {
		a.add(m)
		if calls.Add(1) == 1 {
			return errors.New("transient failure")
		}
		return nil
	}
	c1 := e.client()
	e.subscribe(c1, topic, group, transient, messaging.WithRetry(slowRetry))
	e.publish(e.client(), topic, msg("k", "m"))
	e.waitUntil("the first attempt", &a.notifier, func() bool { return len(a.of("m")) == 1 })
	if err := c1.Close(); err != nil { // restart 1: during the retry wait
		e.Errorf("first graceful shutdown: %v", err)
	}

	c2 := e.client()
	e.subscribe(c2, topic, group, func(ctx context.Context, m *messaging.Message) error {
		a.add(m)
		<-messaging.Draining(ctx) // restart 2: while the handler runs
		return errors.New("interrupted by the shutdown")
	}, messaging.WithRetry(fastRetry3))
	e.waitUntil("the second attempt", &a.notifier, func() bool { return len(a.of("m")) == 2 })
	if err := c2.Close(); err != nil {
		e.Errorf("second graceful shutdown: %v", err)
	}

	done := &recorder{}
	e.subscribe(e.client(), topic, group, func(ctx context.Context, m *messaging.Message) error {
		if err := transient(ctx, m); err != nil {
			return err
		}
		done.add(m)
		return nil
	}, messaging.WithRetry(fastRetry3))
	e.awaitBodies(done, "m")
	if got := a.of("m"); !slices.Equal(got, []int{1, 2, 3}) {
		e.Errorf("attempts across three members: %v, want [1 2 3] (each graceful release counts one delivery)", got)
	}
}

// clientOn returns a client over tr (owned by it), closed at cleanup.
func (e *env) clientOn(tr transport.Transport, opts ...messaging.ClientOption) *messaging.Client {
	e.Helper()
	c, err := messaging.New(tr, clientOpts(opts...)...)
	if err != nil {
		tr.Close()
		e.Fatalf("messaging.New: %v", err)
	}
	e.Cleanup(func() {
		if err := c.Close(); err != nil {
			e.Logf("close client: %v", err)
		}
	})
	return c
}

// countingTransport counts the messages its subscriptions received.
type countingTransport struct {
	transport.Transport
	received atomic.Int64
}

func (t *countingTransport) Subscribe(ctx context.Context, from transport.Address, group string, o transport.SubscribeOptions) (transport.Subscription, error) {
	s, err := t.Transport.Subscribe(ctx, from, group, o)
	if err != nil {
		return nil, err
	}
	return &countingSub{Subscription: s, t: t}, nil
}

type countingSub struct {
	transport.Subscription
	t *countingTransport
}

func (s *countingSub) Receive(ctx context.Context, max int) ([]*transport.Message, error) {
	msgs, err := s.Subscription.Receive(ctx, max)
	if len(msgs) > 0 {
		s.t.received.Add(int64(len(msgs)))
	}
	return msgs, err
}
