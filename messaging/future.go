package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/transport"
	"go.opentelemetry.io/otel/trace"
)

// RequestOption configures RequestAsync.
type RequestOption func(*Future)

// OnReply sets a function called once, in its own goroutine, with the
// reply or the error that ended the request.
func OnReply(fn func(reply *Message, err error)) RequestOption {
	return func(f *Future) { f.onReply = fn }
}

// Future is the pending result of RequestAsync.
type Future struct {
	corr    string
	service string
	onReply func(*Message, error)
	done    chan struct{}
	once    sync.Once
	reply   *Message
	err     error

	span trace.Span // nil when tracing is off

	mu       sync.Mutex
	resolved bool
	stop     func() // releases the timer, context watch and registration
}

// setStop installs the release function, or runs it at once if the
// request already ended.
func (f *Future) setStop(stop func()) {
	f.mu.Lock()
	if f.resolved {
		f.mu.Unlock()
		stop()
		return
	}
	f.stop = stop
	f.mu.Unlock()
}

// CorrelationID returns the correlation ID of the request, which its reply
// carries.
func (f *Future) CorrelationID() string { return f.corr }

// Done is closed when the reply has arrived or the request has ended.
func (f *Future) Done() <-chan struct{} { return f.done }

// Wait waits for the reply until the request ends or ctx ends. It returns
// what Request would. If ctx ends first, Wait returns ctx.Err() and the
// request goes on.
func (f *Future) Wait(ctx context.Context) (*Message, error) {
	select {
	case <-f.done:
		return f.reply, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Cancel ends the request: Wait returns context.Canceled and a reply that
// arrives later is dropped.
func (f *Future) Cancel() { f.resolve(nil, context.Canceled) }

func (f *Future) resolve(reply *Message, err error) {
	f.once.Do(func() {
		f.reply, f.err = reply, err
		close(f.done)
		f.mu.Lock()
		f.resolved = true
		stop := f.stop
		f.mu.Unlock()
		if stop != nil {
			stop()
		}
		endSpan(f.span, err)
		if f.onReply != nil {
			go f.onReply(reply, err)
		}
	})
}

func (f *Future) deliver(m *Message) {
	if re := remoteError(f.service, m); re != nil {
		f.resolve(nil, re)
		return
	}
	f.resolve(m, nil)
}

// RequestAsync sends req to service and returns at once. The reply, or the
// error that ends the request (as for Request), arrives through the
// Future and, if given, the OnReply function. The request's deadline is
// ctx's, or the client's request timeout; cancelling ctx cancels the
// request. Many requests may be outstanding at once; each reply is matched
// to its request by correlation ID.
func (c *Client) RequestAsync(ctx context.Context, service string, req *Message, opts ...RequestOption) (*Future, error) {
	if err := undelayed(req); err != nil {
		return nil, err
	}
	if err := validName("service", service); err != nil {
		return nil, err
	}
	if err := c.checkResponders(ctx, service); err != nil {
		return nil, err
	}
	f := &Future{corr: newID(), service: service, done: make(chan struct{})}
	for _, o := range opts {
		o(f)
	}
	sctx, span := c.tel.startClient(ctx, "request", service)
	f.span = span
	deadline, err := c.startRequest(sctx, transport.Queue(c.requestQueue(service)), req, f.corr, f)
	if err != nil {
		endSpan(span, err)
		if errors.Is(err, transport.ErrNotFound) {
			return nil, noResponders(err, service)
		}
		return nil, err
	}
	timer := time.AfterFunc(time.Until(deadline), func() {
		f.resolve(nil, fmt.Errorf("%w: request to %s: no reply by %s", ErrTimeout, service, deadline.Format(time.RFC3339Nano)))
	})
	stopWatch := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			f.resolve(nil, fmt.Errorf("%w: request to %s: %w", ErrTimeout, service, ctx.Err()))
			return
		}
		f.resolve(nil, ctx.Err())
	})
	ib := c.currentReplyInbox()
	f.setStop(func() {
		timer.Stop()
		stopWatch()
		ib.unregister(f.corr)
	})
	return f, nil
}
