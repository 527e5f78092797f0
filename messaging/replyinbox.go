package messaging

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/internal/wait"
	"github.com/switchboard-go/switchboard/transport"
)

// pending is a request waiting for replies. deliver must not block: it
// may run in the goroutine of the Send that carries the reply (see
// openInbox).
type pending interface{ deliver(*Message) }

// replyInbox is a client's reply inbox and the requests waiting for
// replies, by correlation ID: it receives the replies from the inbox and
// hands each to the request with its correlation ID. Replies that match no
// request (late, or duplicated) are dropped.
type replyInbox struct {
	inbox   transport.Inbox
	addr    string
	log     *slog.Logger
	cancel  context.CancelFunc
	done    chan struct{}
	dropped atomic.Int64

	mu      sync.Mutex
	closed  bool
	pending map[string]pending
}

func (c *Client) currentReplyInbox() *replyInbox {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replies
}

// inboxOpening is the opening of a client's reply inbox, shared by the
// requests that need it meanwhile (a singleflight): it runs in its own
// goroutine, holding no lock of the client, so that no other call waits
// for it, and each request waits for it only until its own context ends.
type inboxOpening struct {
	done   chan struct{} // closed when the opening ended
	cancel context.CancelFunc
	err    error // set before done is closed
}

// inboxOpenTimeout bounds the opening of a reply inbox when the client's
// request timeout is shorter.
const inboxOpenTimeout = 30 * time.Second

// ensureReplyInbox returns the client's reply inbox, opening it on first
// use. The client's lock is never held across the broker call: the first
// request starts the opening (see inboxOpening) and every request waits
// for it, or for its own context.
func (c *Client) ensureReplyInbox(ctx context.Context) (*replyInbox, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.replies != nil {
		ib := c.replies
		c.mu.Unlock()
		return ib, nil
	}
	op := c.opening
	if op == nil {
		octx, cancel := context.WithTimeout(context.Background(), max(inboxOpenTimeout, c.o.requestTimeout))
		op = &inboxOpening{done: make(chan struct{}), cancel: cancel}
		c.opening = op
		c.ops.Add(1) // Shutdown waits for the opening, then closes its reply inbox
		go c.openInbox(octx, op)
	}
	c.mu.Unlock()
	select {
	case <-op.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if op.err != nil {
		return nil, op.err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	return c.replies, nil
}

// openInbox opens the transport's reply inbox and installs it as the
// client's replyInbox. A failed opening is forgotten, so that the next
// request tries again. Where the transport hands replies straight to a
// function (transport.PushInboxOpener), each reply is dispatched in the
// goroutine that brings it, with no receive loop in between; elsewhere a
// receive loop (run) dispatches them.
func (c *Client) openInbox(ctx context.Context, op *inboxOpening) {
	defer c.ops.Done()
	defer op.cancel()
	rctx, cancel := context.WithCancel(context.Background())
	ib := &replyInbox{
		log:     c.log,
		cancel:  cancel,
		done:    make(chan struct{}),
		pending: make(map[string]pending),
	}
	var inbox transport.Inbox
	var err error
	pusher, push := c.t.(transport.PushInboxOpener)
	if push {
		inbox, err = pusher.OpenPushInbox(ctx, ib.dispatch)
	} else {
		inbox, err = c.t.OpenInbox(ctx)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(op.done)
	c.opening = nil
	if err != nil {
		cancel()
		op.err = wrapOp(err, "open reply inbox", "", "")
		return
	}
	ib.inbox, ib.addr = inbox, inbox.Address()
	if push {
		close(ib.done) // no receive loop
	} else {
		go ib.run(rctx)
	}
	c.replies = ib // closed by Shutdown, even when it began meanwhile
}

func (ri *replyInbox) register(corr string, p pending) bool {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.closed {
		return false
	}
	ri.pending[corr] = p
	return true
}

func (ri *replyInbox) unregister(corr string) {
	ri.mu.Lock()
	delete(ri.pending, corr)
	ri.mu.Unlock()
}

// dispatch hands a reply to the request waiting for its correlation ID,
// or drops it (late, or duplicated). It never blocks: every pending's
// deliver returns at once.
func (ri *replyInbox) dispatch(tm *transport.Message) {
	m := fromTransport(tm, "")
	m.Responder = m.reserved[hdrResponder]
	ri.mu.Lock()
	p := ri.pending[m.CorrelationID]
	ri.mu.Unlock()
	if p == nil {
		ri.dropped.Add(1)
		ri.log.Debug("switchboard: reply matches no waiting request; dropped", "correlation_id", m.CorrelationID)
		return
	}
	p.deliver(m)
}

// run receives the replies of a transport without push inboxes and
// dispatches them, until ctx ends.
func (ri *replyInbox) run(ctx context.Context) {
	defer close(ri.done)
	failures := 0
	for {
		msgs, err := ri.inbox.Receive(ctx)
		for _, tm := range msgs {
			ri.dispatch(tm)
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return
		}
		failures++
		pause := min(time.Duration(failures)*100*time.Millisecond, 5*time.Second)
		ri.log.Warn("switchboard: reply inbox receive failed; retrying", "error", err, "wait", pause)
		if !wait.Sleep(ctx, nil, pause) {
			return
		}
	}
}

// close fails every waiting request with ErrClosed and closes the inbox.
func (ri *replyInbox) close() {
	ri.mu.Lock()
	ri.closed = true
	waiting := ri.pending
	ri.pending = map[string]pending{}
	ri.mu.Unlock()
	for _, p := range waiting {
		if f, ok := p.(*Future); ok {
			f.resolve(nil, ErrClosed)
		}
	}
	ri.cancel()
	<-ri.done
	ri.inbox.Close()
}
