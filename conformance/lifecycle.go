package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// lifecycleCloseIdempotent proves R31: closing a client, a subscription or
// a transport again returns the first result, and never panics.
func lifecycleCloseIdempotent(e *env) {
	c := e.client()
	s := e.subscribe(c, e.name("t"), e.name("g"), (&recorder{}).handle)
	for i := range 2 {
		if err := e.noPanic("Subscription.Close", s.Close); err != nil {
			e.Errorf("Subscription.Close #%d: %v", i+1, err)
		}
	}
	e.await("the subscription to be done", s.Done())
	if err := s.Err(); err != nil {
		e.Errorf("Subscription.Err after Close: %v", err)
	}
	for i := range 2 {
		if err := e.noPanic("Client.Close", c.Close); err != nil {
			e.Errorf("Client.Close #%d: %v", i+1, err)
		}
	}
	if err := e.noPanic("Client.Shutdown", func() error { return c.Shutdown(e.ctx) }); err != nil {
		e.Errorf("Client.Shutdown after Close: %v", err)
	}
	tr := e.transport()
	for i := range 2 {
		if err := e.noPanic("Transport.Close", tr.Close); err != nil {
			e.Errorf("Transport.Close #%d: %v", i+1, err)
		}
	}
}

// lifecycleCallsAfterClose proves R32: after Close every call of the
// client, and of the transport, fails with ErrClosed.
func lifecycleCallsAfterClose(e *env) {
	c := e.client()
	c.Close()
	topic, svc := e.name("t"), e.name("s")
	h := (&recorder{}).handle
	rh := messaging.ReplyHandler(echo)
	m := msg("", "x")
	calls := map[string]func() error{
		"Publish": func() error { return c.Publish(e.ctx, topic, m) },
		"Notify":  func() error { return c.Notify(e.ctx, e.name("r"), m) },
		"Subscribe": func() error {
			_, err := c.Subscribe(e.ctx, topic, e.name("g"), h)
			return err
		},
		"Listen": func() error {
			_, err := c.Listen(e.ctx, e.name("r"), h)
			return err
		},
		"Serve": func() error {
			_, err := c.Serve(e.ctx, svc, rh)
			return err
		},
		"Respond": func() error {
			_, err := c.Respond(e.ctx, topic, e.name("g"), rh)
			return err
		},
		"Request": func() error {
			_, err := c.Request(e.ctx, svc, m)
			return err
		},
		"RequestAsync": func() error {
			_, err := c.RequestAsync(e.ctx, svc, m)
			return err
		},
		"Gather": func() error {
			_, err := c.Gather(e.ctx, topic, m, messaging.GatherTimeout(time.Second))
			return err
		},
	}
	for name, call := range calls {
		e.mustErr("Client."+name+" after Close", e.noPanic(name, call), messaging.ErrClosed)
	}

	tr := e.transport()
	tr.Close()
	tcalls := map[string]func() error{
		"Send": func() error {
			return tr.Send(e.ctx, transport.Topic(topic), []*transport.Message{{ID: "x", Body: []byte("x")}})
		},
		"Declare": func() error { return tr.Declare(e.ctx, transport.Queue(e.name("q"))) },
		"Subscribe": func() error {
			_, err := tr.Subscribe(e.ctx, transport.Topic(topic), e.name("g"), transport.SubscribeOptions{MaxInFlight: 1})
			return err
		},
		"OpenInbox": func() error {
			_, err := tr.OpenInbox(e.ctx)
			return err
		},
	}
	for name, call := range tcalls {
		e.mustErr("Transport."+name+" after Close", e.noPanic(name, call), transport.ErrClosed)
	}

	// A subscription of a transport is closed with it.
	tr2 := e.transport()
	sub, err := tr2.Subscribe(e.ctx, transport.Topic(topic), e.name("g2"), transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		e.Fatalf("Transport.Subscribe: %v", err)
	}
	tr2.Close()
	_, err = sub.Receive(e.ctx, 1)
	e.mustErr("Subscription.Receive after Transport.Close", err, transport.ErrClosed)
	if err := sub.Close(); err != nil && !errors.Is(err, transport.ErrClosed) {
		e.Errorf("Subscription.Close after Transport.Close: %v", err)
	}
}

// awaitClosing waits until c refuses new calls, that is until its
// shutdown has begun. There is no signal for it, so it polls.
func (e *env) awaitClosing(c *messaging.Client) {
	e.Helper()
	nobody := e.name("nobody")
	for {
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		_, err := c.Request(ctx, nobody, msg("", "probe"))
		cancel()
		if errors.Is(err, messaging.ErrClosed) {
			return
		}
		if e.ctx.Err() != nil {
			e.Fatalf("the client did not start shutting down")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lifecycleShutdownDrains proves R33: Shutdown waits for the handler in
// progress and acknowledges its message; the messages it holds but has not
// started, and those not yet fetched, go to the next consumer.
func lifecycleShutdownDrains(e *env) {
	topic, group := e.name("t"), e.name("g")
	pub := e.client()
	c1 := e.client()
	release := e.gate()
	started := make(chan struct{})
	var returned atomic.Bool
	r1 := &recorder{}
	e.subscribe(c1, topic, group, func(ctx context.Context, m *messaging.Message) error {
		r1.add(m)
		if string(m.Body) == "m0" {
			close(started)
			release.wait(ctx)
			returned.Store(true)
		}
		return nil
	}, messaging.WithMaxInFlight(4))
	want := seq("m", 10)
	var msgs []*messaging.Message
	for _, b := range want {
		msgs = append(msgs, msg("k", b))
	}
	e.publish(pub, topic, msgs...)
	e.await("the first handler to start", started)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), CaseTimeout)
		defer cancel()
		err := c1.Shutdown(ctx)
		if !returned.Load() {
			err = errors.Join(err, errors.New("Shutdown returned before the handler in progress did"))
		}
		done <- err
	}()
	e.awaitClosing(c1)
	select {
	case err := <-done:
		e.Fatalf("Shutdown returned while a handler was running: %v", err)
	default:
	}
	release.open()
	select {
	case err := <-done:
		if err != nil {
			e.Errorf("Shutdown: %v", err)
		}
	case <-e.ctx.Done():
		e.Fatalf("Shutdown did not return")
	}
	for _, m := range r1.all() {
		if string(m.Body) != "m0" {
			e.Errorf("%q was handled while an earlier message of its key was in progress", m.Body)
		}
	}

	// The next consumer gets m1..m9 and the marker, not m0 (acknowledged).
	c2 := e.client()
	r2 := &recorder{}
	e.subscribe(c2, topic, group, r2.handle)
	e.publish(pub, topic, msg("k", "marker"))
	e.awaitBodies(r2, append(want[1:], "marker")...)
	for _, m := range e.before(r2, "marker") {
		if string(m.Body) == "m0" {
			e.Errorf("m0, handled during Shutdown, was delivered again: its acknowledgement was lost")
		}
	}
}

// lifecycleShutdownDeadline proves R34: at Shutdown's deadline the
// handlers' context is cancelled, Shutdown reports the deadline, and the
// unfinished message is released for the next consumer, not acknowledged.
func lifecycleShutdownDeadline(e *env) {
	topic, group := e.name("t"), e.name("g")
	c1 := e.client()
	started := make(chan struct{})
	var once sync.Once
	var cancelled atomic.Bool
	e.subscribe(c1, topic, group, func(ctx context.Context, m *messaging.Message) error {
		once.Do(func() { close(started) })
		<-ctx.Done() // honours its context, and only that
		cancelled.Store(true)
		return ctx.Err()
	})
	e.publish(c1, topic, msg("k", "stuck"))
	e.await("the handler to start", started)
	ctx, cancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
	defer cancel()
	err := c1.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		e.Errorf("Shutdown past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if !cancelled.Load() {
		e.Errorf("the handler's context was not cancelled at the deadline")
	}
	c2 := e.client()
	r := &recorder{}
	e.subscribe(c2, topic, group, r.handle)
	e.awaitBodies(r, "stuck")
}

// lifecycleNothingLost proves R35: a consumer stopped in the middle of a
// stream, with handlers running and messages held, loses nothing: the
// next consumer of the group receives every message not handled.
func lifecycleNothingLost(e *env) {
	topic, group := e.name("t"), e.name("g")
	pub := e.client()
	c1 := e.client()
	var n atomic.Int32
	reached := make(chan struct{})
	var once sync.Once
	done := &recorder{}
	e.subscribe(c1, topic, group, func(ctx context.Context, m *messaging.Message) error {
		if n.Add(1) > 30 {
			once.Do(func() { close(reached) })
			<-ctx.Done() // stuck until the shutdown deadline
			return ctx.Err()
		}
		return done.handle(ctx, m)
	}, messaging.WithMaxInFlight(8))
	const keys, per = 5, 20
	var want []string
	for i := range per {
		var batch []*messaging.Message
		for k := range keys {
			b := fmt.Sprintf("k%d-%d", k, i)
			want = append(want, b)
			batch = append(batch, msg(fmt.Sprint("k", k), b))
		}
		e.publish(pub, topic, batch...)
	}
	e.await("30 messages", reached)
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	c1.Shutdown(ctx) // reports the stuck handlers; what matters is below
	c2 := e.client()
	e.subscribe(c2, topic, group, done.handle)
	e.awaitBodies(done, want...)
}

// lifecyclePendingRequest proves R36: requests still waiting when their
// client closes fail with ErrClosed.
func lifecyclePendingRequest(e *env) {
	srv := e.client()
	cli := e.client()
	svc := e.name("s")
	release := e.gate()
	started := make(chan struct{})
	var once sync.Once
	e.serve(srv, svc, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		once.Do(func() { close(started) })
		release.wait(ctx)
		return &messaging.Message{}, nil
	})
	f, err := cli.RequestAsync(e.ctx, svc, msg("", "x"))
	if err != nil {
		e.Fatalf("RequestAsync: %v", err)
	}
	e.await("the responder to start", started)
	if err := cli.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}
	e.await("the future to end", f.Done())
	_, err = f.Wait(e.ctx)
	e.mustErr("pending request after Close", err, messaging.ErrClosed)
}

// lifecycleSubscriptionClose proves R37: closing one subscription stops
// only it; the client and its other subscriptions go on, and the closed
// group keeps what is published for its next consumer.
func lifecycleSubscriptionClose(e *env) {
	c := e.client()
	t1, t2, g, g2 := e.name("t1"), e.name("t2"), e.name("g1"), e.name("g2")
	r1, r2 := &recorder{}, &recorder{}
	s1 := e.subscribe(c, t1, g, r1.handle)
	e.subscribe(c, t2, g2, r2.handle)
	if err := s1.Close(); err != nil {
		e.Fatalf("Subscription.Close: %v", err)
	}
	e.await("the subscription to be done", s1.Done())
	e.publish(c, t1, msg("k", "held"))
	e.publish(c, t2, msg("k", "live"))
	e.awaitBodies(r2, "live")
	r3 := &recorder{}
	e.subscribe(c, t1, g, r3.handle)
	e.awaitBodies(r3, "held")
	if r1.has("held") {
		e.Errorf("a closed subscription received a message")
	}
}
