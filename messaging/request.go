package messaging

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// Request sends req to service and waits for the reply, until ctx ends or,
// when ctx has no deadline, the client's request timeout. It returns the
// reply; a *RemoteError when the responder returned an error; an error
// matching ErrNoResponders, with nothing sent, when no responder ever
// served the service or none serves it now (its request queue has no
// consumer; see transport.ConsumerCounter for how each broker counts);
// ErrTimeout when the deadline passes; ctx.Err() when ctx is cancelled.
// req is not modified.
func (c *Client) Request(ctx context.Context, service string, req *Message) (*Message, error) {
	if err := undelayed(req); err != nil {
		return nil, err
	}
	if err := validName("service", service); err != nil {
		return nil, err
	}
	if err := c.checkResponders(ctx, service); err != nil {
		return nil, err
	}
	w := &syncWaiter{ch: make(chan *Message, 1)}
	corr := newID()
	sctx, span := c.tel.startClient(ctx, "request", service)
	deadline, err := c.startRequest(sctx, transport.Queue(c.requestQueue(service)), req, corr, w)
	if err != nil {
		endSpan(span, err)
		if errors.Is(err, transport.ErrNotFound) {
			return nil, noResponders(err, service)
		}
		return nil, err
	}
	var expired <-chan time.Time
	if _, has := ctx.Deadline(); !has { // the client's request timeout
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	var reply *Message
	select {
	case reply = <-w.ch:
		if re := remoteError(service, reply); re != nil {
			reply, err = nil, re
		}
	case <-ctx.Done():
		err = ctx.Err()
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: request to %s: %w", ErrTimeout, service, err)
		}
	case <-expired:
		err = fmt.Errorf("%w: request to %s: no reply by %s", ErrTimeout, service, deadline.Format(time.RFC3339Nano))
	case <-c.closing:
		err = ErrClosed
	}
	if ib := c.currentReplyInbox(); ib != nil {
		ib.unregister(corr)
	}
	endSpan(span, err)
	return reply, err
}

// syncWaiter receives the reply of a synchronous Request.
type syncWaiter struct{ ch chan *Message }

func (w *syncWaiter) deliver(m *Message) {
	select {
	case w.ch <- m:
	default: // a duplicate reply
	}
}

// requestQueue returns the queue of a service's requests, cached.
func (c *Client) requestQueue(service string) string {
	if q, ok := c.rpcQueues.Load(service); ok {
		return q.(string)
	}
	q := requestQueue(service)
	c.rpcQueues.Store(service, q)
	return q
}

// startRequest validates and sends a request carrying a reply address and
// correlation ID, registered with the reply inbox first so that no reply
// is missed. It returns the request's deadline.
func (c *Client) startRequest(ctx context.Context, to transport.Address, req *Message, corr string, p pending) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	if err := c.enter(); err != nil {
		return time.Time{}, err
	}
	defer c.ops.Done()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.o.requestTimeout)
	}
	tm, err := c.prepare(req, time.Now())
	if err != nil {
		return time.Time{}, err
	}
	ib, err := c.ensureReplyInbox(ctx)
	if err != nil {
		return time.Time{}, err
	}
	tm.CorrelationID = corr
	tm.ReplyTo = ib.addr
	if to.Kind == transport.KindQueue {
		tm.Expires = deadline // the broker may drop it unserved (R95)
	}
	tm.Headers = withHeader(tm.Headers, hdrDeadline, strconv.FormatInt(deadline.UnixMilli(), 10))
	if err := c.checkSize(tm); err != nil {
		return time.Time{}, err
	}
	if !ib.register(corr, p) {
		return time.Time{}, ErrClosed
	}
	if err := c.transmit(ctx, sendOp(to), to, []*transport.Message{tm}); err != nil {
		ib.unregister(corr)
		return time.Time{}, wrapOp(err, "send request to", to.String(), to.Name)
	}
	return deadline, nil
}
