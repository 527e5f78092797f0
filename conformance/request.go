package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// echo is a ReplyHandler that answers "re:" + body, with the request's
// "n" header copied.
func echo(_ context.Context, req *messaging.Message) (*messaging.Message, error) {
	reply := &messaging.Message{Body: append([]byte("re:"), req.Body...)}
	if n := req.Header("n"); n != "" {
		reply.SetHeader("n", n)
	}
	return reply, nil
}

// requestSuccess proves R11: a request gets its responder's reply.
func requestSuccess(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	e.serve(srv, svc, echo)
	reply, err := cli.Request(e.ctx, svc, &messaging.Message{Body: []byte("hello"), Headers: map[string]string{"n": "1"}})
	if err != nil {
		e.Fatalf("Request: %v", err)
	}
	if string(reply.Body) != "re:hello" || reply.Header("n") != "1" {
		e.Errorf("reply body %q header n %q, want %q and %q", reply.Body, reply.Header("n"), "re:hello", "1")
	}
}

// requestTimeout proves R12: a request whose reply does not come by its
// deadline (the context's, or else the client's request timeout) fails
// with ErrTimeout, which also matches context.DeadlineExceeded.
func requestTimeout(e *env) {
	srv := e.client()
	svc := e.name("s")
	cli := e.client()
	cli2 := e.client(messaging.WithRequestTimeout(time.Second))
	hold := e.gate()
	e.serve(srv, svc, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		hold.wait(ctx)
		return &messaging.Message{}, nil
	})

	ctx, cancel := context.WithTimeout(e.ctx, time.Second)
	defer cancel()
	_, err := cli.Request(ctx, svc, msg("", "ctx-deadline"))
	if !errors.Is(err, messaging.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		e.Errorf("Request past its context deadline: got %v, want ErrTimeout matching context.DeadlineExceeded", err)
	}

	// No deadline on the context: the client's request timeout applies.
	nodl, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	_, err = cli2.Request(nodl, svc, msg("", "client-timeout"))
	if !errors.Is(err, messaging.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		e.Errorf("Request past the client's request timeout: got %v, want ErrTimeout", err)
	}
}

// requestResponderError proves R13: a responder's error reaches the
// requester as a *RemoteError with the service, the text and the code,
// and is not retried.
func requestResponderError(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	var retried atomic.Bool
	e.serve(srv, svc, func(_ context.Context, req *messaging.Message) (*messaging.Message, error) {
		if req.Attempt > 1 {
			retried.Store(true)
		}
		switch string(req.Body) {
		case "coded":
			return nil, messaging.WithCode(errors.New("out of stock"), "E42")
		default:
			return nil, errors.New("plain failure")
		}
	})
	_, err := cli.Request(e.ctx, svc, msg("", "coded"))
	var re *messaging.RemoteError
	if !errors.As(err, &re) {
		e.Fatalf("Request: got %v, want a *RemoteError", err)
	}
	if re.Service != svc || re.Message != "out of stock" || re.Code != "E42" {
		e.Errorf("RemoteError = %+v, want service %q, message %q, code E42", re, svc, "out of stock")
	}
	_, err = cli.Request(e.ctx, svc, msg("", "plain"))
	if !errors.As(err, &re) || re.Message != "plain failure" || re.Code != "" {
		e.Errorf("Request: got %v (%+v), want a *RemoteError %q without code", err, re, "plain failure")
	}
	if retried.Load() {
		e.Errorf("a request answered with an error was handled again")
	}
}

// requestResponderPanic proves R13: a responder that panics answers with a
// *RemoteError; the responder keeps serving.
func requestResponderPanic(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	e.serve(srv, svc, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		if string(req.Body) == "panic" {
			panic("responder boom")
		}
		return echo(ctx, req)
	})
	_, err := cli.Request(e.ctx, svc, msg("", "panic"))
	var re *messaging.RemoteError
	if !errors.As(err, &re) || !strings.Contains(re.Message, "responder boom") {
		e.Errorf("Request to a panicking responder: got %v, want a *RemoteError with the panic", err)
	}
	reply, err := cli.Request(e.ctx, svc, msg("", "after"))
	if err != nil || string(reply.Body) != "re:after" {
		e.Errorf("Request after the panic: %v %v", reply, err)
	}
}

// requestConcurrent500 proves R14: 500 requests outstanding at once, from
// one client, each get their own reply.
func requestConcurrent500(e *env) {
	srv1, srv2, cli := e.client(), e.client(), e.client()
	svc := e.name("s")
	e.serve(srv1, svc, echo)
	e.serve(srv2, svc, echo)
	const n = 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf("q%d", i)
			reply, err := cli.Request(e.ctx, svc, &messaging.Message{Body: []byte(body), Headers: map[string]string{"n": fmt.Sprint(i)}})
			switch {
			case err != nil:
				errs <- fmt.Errorf("request %d: %w", i, err)
			case string(reply.Body) != "re:"+body || reply.Header("n") != fmt.Sprint(i):
				errs <- fmt.Errorf("request %d got the reply %q (n=%s) of another request", i, reply.Body, reply.Header("n"))
			}
		}()
	}
	wg.Wait()
	close(errs)
	count := 0
	for err := range errs {
		if count++; count <= 10 {
			e.Error(err)
		}
	}
	if count > 10 {
		e.Errorf("... and %d more failures", count-10)
	}
}

// requestLateReplyDropped proves R15: a reply that arrives after its
// request timed out is dropped; it is never given to another request.
func requestLateReplyDropped(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	timedOut := e.gate()
	started := make(chan struct{})
	var once sync.Once
	e.serve(srv, svc, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		if string(req.Body) == "slow" {
			once.Do(func() { close(started) })
			timedOut.wait(ctx) // reply only once the requester gave up
			return &messaging.Message{Body: []byte("late")}, nil
		}
		return echo(ctx, req)
	})
	ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
	defer cancel()
	f, err := cli.RequestAsync(ctx, svc, msg("k", "slow"))
	if err != nil {
		e.Fatalf("RequestAsync: %v", err)
	}
	select {
	case <-started:
	case <-f.Done():
		e.Fatalf("the request timed out before the responder received it; cannot test a late reply")
	}
	_, err = f.Wait(e.ctx)
	if !errors.Is(err, messaging.ErrTimeout) {
		e.Fatalf("slow request: got %v, want ErrTimeout", err)
	}
	timedOut.open()
	// Same key: the responder sends the late reply before it handles
	// this request, so the late reply reaches the inbox first.
	for i := range 3 {
		body := fmt.Sprint("next", i)
		reply, err := cli.Request(e.ctx, svc, msg("k", body))
		if err != nil {
			e.Fatalf("request after the late reply: %v", err)
		}
		if string(reply.Body) != "re:"+body {
			e.Errorf("request %q got reply %q: a late reply was delivered to another request", body, reply.Body)
		}
	}
	if r, err := f.Wait(e.ctx); !errors.Is(err, messaging.ErrTimeout) || r != nil {
		e.Errorf("the timed-out future changed to %v, %v", r, err)
	}
}

// requestNoResponders proves R16: a request to a service nobody ever
// served fails at once with ErrNoResponders.
func requestNoResponders(e *env) {
	cli := e.client()
	svc := e.name("s")
	_, err := cli.Request(e.ctx, svc, msg("", "anyone"))
	e.mustErr("Request", err, messaging.ErrNoResponders)
	_, err = cli.RequestAsync(e.ctx, svc, msg("", "anyone"))
	e.mustErr("RequestAsync", err, messaging.ErrNoResponders)
}

// requestNoRespondersOnceStopped proves R95: a responder is counted as
// soon as Serve returns and no longer once its subscription is closed, so
// a request made after every responder of a service stopped fails at once
// with ErrNoResponders (Request and RequestAsync) on every transport,
// instead of waiting for its deadline; nothing of it stays queued for a
// later responder.
func requestNoRespondersOnceStopped(e *env) {
	c := e.client()
	svc := e.name("s")
	s := e.serve(c, svc, echo)
	if _, err := c.Request(e.ctx, svc, msg("", "one")); err != nil {
		e.Fatalf("Request while served: %v", err)
	}
	if err := s.Close(); err != nil {
		e.Fatalf("close server: %v", err)
	}
	// The broker forgets a closed consumer asynchronously (RabbitMQ's
	// quorum queues within moments): wait until it reports none.
	adm := c.Admin()
	for {
		info, err := adm.Inspect(e.ctx, messaging.RequestQueue(svc), "")
		if err != nil {
			e.Fatalf("Inspect: %v", err)
		}
		if info.Consumers == 0 {
			break
		}
		if info.Consumers < 0 {
			e.Fatalf("Inspect of a request queue reports an unknown consumer count (%d): every transport must count a request queue's consumers", info.Consumers)
		}
		select {
		case <-e.ctx.Done():
			e.Fatalf("the broker still reports %d consumers of the closed server", info.Consumers)
		case <-time.After(20 * time.Millisecond): // polling the broker's state
		}
	}
	requester := e.client()
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	_, err := requester.Request(ctx, svc, msg("", "two"))
	e.mustErr("Request once its responders stopped", err, messaging.ErrNoResponders)
	_, err = requester.RequestAsync(ctx, svc, msg("", "two"))
	e.mustErr("RequestAsync once its responders stopped", err, messaging.ErrNoResponders)
	r := &recorder{}
	e.serve(e.client(), svc, func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		r.add(m)
		return echo(ctx, m)
	})
	if _, err := requester.Request(e.ctx, svc, msg("", "three")); err != nil {
		e.Fatalf("Request once served again: %v", err)
	}
	if r.has("two") {
		e.Errorf("a request refused for want of responders reached the new responder")
	}
}

// asyncFuture proves R17: RequestAsync returns a Future whose Wait gives
// the reply, and whose CorrelationID the reply carries.
func asyncFuture(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	e.serve(srv, svc, echo)
	var fs []*messaging.Future
	for i := range 10 {
		f, err := cli.RequestAsync(e.ctx, svc, msg("", fmt.Sprint("a", i)))
		if err != nil {
			e.Fatalf("RequestAsync: %v", err)
		}
		fs = append(fs, f)
	}
	for i, f := range fs {
		e.await("future "+fmt.Sprint(i), f.Done())
		reply, err := f.Wait(e.ctx)
		if err != nil || string(reply.Body) != fmt.Sprint("re:a", i) {
			e.Errorf("future %d: %v %v", i, reply, err)
			continue
		}
		if reply.CorrelationID != f.CorrelationID() {
			e.Errorf("reply correlation ID %q, want the future's %q", reply.CorrelationID, f.CorrelationID())
		}
	}
}

// asyncHandler proves R17: the OnReply function is called once with the
// reply or with the error that ended the request.
func asyncHandler(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	e.serve(srv, svc, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		if string(req.Body) == "fail" {
			return nil, messaging.WithCode(errors.New("no"), "E1")
		}
		return echo(ctx, req)
	})
	type result struct {
		reply *messaging.Message
		err   error
	}
	for _, body := range []string{"ok", "fail"} {
		got := make(chan result, 2)
		_, err := cli.RequestAsync(e.ctx, svc, msg("", body), messaging.OnReply(func(reply *messaging.Message, err error) {
			got <- result{reply, err}
		}))
		if err != nil {
			e.Fatalf("RequestAsync: %v", err)
		}
		var r result
		select {
		case r = <-got:
		case <-e.ctx.Done():
			e.Fatalf("OnReply was not called")
		}
		var re *messaging.RemoteError
		switch body {
		case "ok":
			if r.err != nil || string(r.reply.Body) != "re:ok" {
				e.Errorf("OnReply(%v, %v), want reply re:ok", r.reply, r.err)
			}
		case "fail":
			if !errors.As(r.err, &re) || re.Code != "E1" || r.reply != nil {
				e.Errorf("OnReply(%v, %v), want a *RemoteError with code E1", r.reply, r.err)
			}
		}
	}
}

// asyncCancel proves R18: Future.Cancel ends the request with
// context.Canceled; its reply, arriving later, is dropped.
func asyncCancel(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	release := e.gate()
	started := make(chan struct{})
	var once sync.Once
	e.serve(srv, svc, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		if string(req.Body) == "block" {
			once.Do(func() { close(started) })
			release.wait(ctx)
			return &messaging.Message{Body: []byte("late")}, nil
		}
		return echo(ctx, req)
	})
	called := make(chan error, 2)
	f, err := cli.RequestAsync(e.ctx, svc, msg("k", "block"), messaging.OnReply(func(_ *messaging.Message, err error) { called <- err }))
	if err != nil {
		e.Fatalf("RequestAsync: %v", err)
	}
	e.await("the responder to start", started)
	f.Cancel()
	if _, err := f.Wait(e.ctx); !errors.Is(err, context.Canceled) {
		e.Errorf("Wait after Cancel: %v, want context.Canceled", err)
	}
	select {
	case err := <-called:
		if !errors.Is(err, context.Canceled) {
			e.Errorf("OnReply after Cancel: %v, want context.Canceled", err)
		}
	case <-e.ctx.Done():
		e.Fatalf("OnReply not called after Cancel")
	}
	f.Cancel() // idempotent
	release.open()
	reply, err := cli.Request(e.ctx, svc, msg("k", "after"))
	if err != nil || string(reply.Body) != "re:after" {
		e.Errorf("request after a cancelled one: %v %v", reply, err)
	}
	if r, err := f.Wait(e.ctx); r != nil || !errors.Is(err, context.Canceled) {
		e.Errorf("the cancelled future changed to %v, %v", r, err)
	}
}

// asyncContextCancel proves R18: cancelling the context of RequestAsync
// cancels the request.
func asyncContextCancel(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	release := e.gate()
	started := make(chan struct{})
	var once sync.Once
	e.serve(srv, svc, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		once.Do(func() { close(started) })
		release.wait(ctx)
		return &messaging.Message{}, nil
	})
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	f, err := cli.RequestAsync(ctx, svc, msg("", "block"))
	if err != nil {
		e.Fatalf("RequestAsync: %v", err)
	}
	e.await("the responder to start", started)
	cancel()
	e.await("the future to end", f.Done())
	if _, err := f.Wait(e.ctx); !errors.Is(err, context.Canceled) {
		e.Errorf("Wait after the context was cancelled: %v, want context.Canceled", err)
	}
}
