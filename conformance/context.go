package conformance

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// doneContexts returns a cancelled context and one past its deadline, with
// the error each must produce.
func doneContexts() []struct {
	ctx  context.Context
	want error
} {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	cancel2()
	return []struct {
		ctx  context.Context
		want error
	}{{cancelled, context.Canceled}, {expired, context.DeadlineExceeded}}
}

// checkDone calls fn with each done context and checks its error.
func (e *env) checkDone(what string, fn func(ctx context.Context) error) {
	e.Helper()
	for _, d := range doneContexts() {
		err := e.noPanic(what, func() error { return fn(d.ctx) })
		if !errors.Is(err, d.want) {
			e.Errorf("%s with a done context: %v, want %v", what, err, d.want)
		}
	}
}

// ctxPublish proves R38: Publish with a done context returns the
// context's error and sends nothing.
func ctxPublish(e *env) {
	c := e.client()
	topic := e.name("t")
	r := &recorder{}
	e.subscribe(c, topic, e.name("g"), r.handle)
	e.checkDone("Publish", func(ctx context.Context) error { return c.Publish(ctx, topic, msg("k", "forbidden")) })
	e.publish(c, topic, msg("k", "marker"))
	for _, m := range e.before(r, "marker") {
		e.Errorf("received %q, published with a done context", m.Body)
	}
}

// ctxNotify proves R38 for Notify.
func ctxNotify(e *env) {
	c := e.client()
	rcpt := e.name("r")
	r := &recorder{}
	e.listen(c, rcpt, r.handle)
	e.checkDone("Notify", func(ctx context.Context) error { return c.Notify(ctx, rcpt, msg("k", "forbidden")) })
	e.checkDone("Notify to a new recipient", func(ctx context.Context) error { return c.Notify(ctx, e.name("new"), msg("k", "forbidden")) })
	e.notify(c, rcpt, msg("k", "marker"))
	for _, m := range e.before(r, "marker") {
		e.Errorf("received %q, sent with a done context", m.Body)
	}
}

// ctxSubscribe proves R38 for Subscribe.
func ctxSubscribe(e *env) {
	c := e.client()
	e.checkDone("Subscribe", func(ctx context.Context) error {
		_, err := c.Subscribe(ctx, e.name("t"), e.name("g"), (&recorder{}).handle)
		return err
	})
}

// ctxListen proves R38 for Listen.
func ctxListen(e *env) {
	c := e.client()
	e.checkDone("Listen", func(ctx context.Context) error {
		_, err := c.Listen(ctx, e.name("r"), (&recorder{}).handle)
		return err
	})
}

// ctxServe proves R38 for Serve.
func ctxServe(e *env) {
	c := e.client()
	e.checkDone("Serve", func(ctx context.Context) error {
		_, err := c.Serve(ctx, e.name("s"), echo)
		return err
	})
}

// ctxRespond proves R38 for Respond.
func ctxRespond(e *env) {
	c := e.client()
	e.checkDone("Respond", func(ctx context.Context) error {
		_, err := c.Respond(ctx, e.name("t"), e.name("g"), echo)
		return err
	})
}

// ctxRequest proves R38 for Request, to a service that is served.
func ctxRequest(e *env) {
	c := e.client()
	svc := e.name("s")
	e.serve(c, svc, echo)
	e.checkDone("Request", func(ctx context.Context) error {
		_, err := c.Request(ctx, svc, msg("", "x"))
		return err
	})
}

// ctxRequestAsync proves R38 for RequestAsync.
func ctxRequestAsync(e *env) {
	c := e.client()
	svc := e.name("s")
	e.serve(c, svc, echo)
	e.checkDone("RequestAsync", func(ctx context.Context) error {
		_, err := c.RequestAsync(ctx, svc, msg("", "x"))
		return err
	})
}

// ctxGather proves R38 for Gather.
func ctxGather(e *env) {
	c := e.client()
	topic := e.name("t")
	e.respond(c, topic, e.name("g"), echo)
	e.checkDone("Gather", func(ctx context.Context) error {
		_, err := c.Gather(ctx, topic, msg("", "x"), messaging.WantReplies(1))
		return err
	})
}

// blockingResponder returns a ReplyHandler that signals started and waits
// for release.
func blockingResponder(release *gate, started chan struct{}) messaging.ReplyHandler {
	var once sync.Once
	return func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		once.Do(func() { close(started) })
		release.wait(ctx)
		return &messaging.Message{}, nil
	}
}

// ctxRequestWhileWaiting proves R39: cancelling the context of a waiting
// Request ends it with context.Canceled, not ErrTimeout.
func ctxRequestWhileWaiting(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	release := e.gate()
	started := make(chan struct{})
	e.serve(srv, svc, blockingResponder(release, started))
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := cli.Request(ctx, svc, msg("", "x"))
		done <- err
	}()
	e.await("the responder to start", started)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || errors.Is(err, messaging.ErrTimeout) {
			e.Errorf("Request whose context was cancelled: %v, want context.Canceled", err)
		}
	case <-e.ctx.Done():
		e.Fatalf("Request did not return after its context was cancelled")
	}
}

// ctxGatherWhileWaiting proves R39 for Gather: it returns what arrived and
// context.Canceled.
func ctxGatherWhileWaiting(e *env) {
	srv, cli := e.client(), e.client()
	topic := e.name("t")
	release := e.gate()
	started := make(chan struct{})
	e.respond(srv, topic, e.name("g"), blockingResponder(release, started))
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	type result struct {
		g   *messaging.Gathered
		err error
	}
	done := make(chan result, 1)
	go func() {
		g, err := cli.Gather(ctx, topic, msg("", "x"), messaging.WantReplies(1))
		done <- result{g, err}
	}()
	e.await("the responder to start", started)
	cancel()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) || r.g == nil || r.g.Count() != 0 {
			e.Errorf("Gather whose context was cancelled: %v, %v; want no replies and context.Canceled", r.g, r.err)
		}
	case <-e.ctx.Done():
		e.Fatalf("Gather did not return after its context was cancelled")
	}
}
