package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/transport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// ReplyHandler serves one request and returns its reply. Returning an
// error sends the error back: the requester gets a *RemoteError (attach a
// code with WithCode). A nil reply with a nil error sends an empty reply.
// A panic is sent back as an error too.
type ReplyHandler func(ctx context.Context, req *Message) (*Message, error)

// requestQueue is the queue a service's requests go to.
func requestQueue(service string) string { return service + ".rpc" }

// Serve answers the requests sent to service with Request and
// RequestAsync. Several Serve calls, in one process or many, share the
// requests. Requests whose requester has given up (their deadline passed)
// are dropped unanswered.
func (c *Client) Serve(ctx context.Context, service string, h ReplyHandler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validName("service", service); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, invalid("nil handler")
	}
	q := requestQueue(service)
	return c.subscribe(ctx, transport.Queue(q), "", service, DeadLetterQueue(q, ""), c.replying(service, service, h), opts, false)
}

// Respond answers the requests published to topic with Gather, as a
// member of group: each group answers once, so a gather collects one reply
// per responding group.
func (c *Client) Respond(ctx context.Context, topic, group string, h ReplyHandler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validName("topic", topic); err != nil {
		return nil, err
	}
	if err := validName("group", group); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, invalid("nil handler")
	}
	return c.subscribe(ctx, transport.Topic(topic), group, topic, DeadLetterQueue(topic, group), c.replying(topic, group, h), opts, false)
}

// replying turns a ReplyHandler into a Handler that sends its reply,
// marked with responder (the group of a Respond, the service of a Serve)
// in the reserved header sb-responder. Only a failure to send the reply is
// a handler error (and so retried); a failure that retrying cannot fix (a
// reply the transport refuses as too large or invalid) is Permanent, so
// the request is dead-lettered at once.
func (c *Client) replying(service, responder string, h ReplyHandler) Handler {
	return func(ctx context.Context, req *Message) error {
		if dl, ok := req.reserved[hdrDeadline]; ok {
			if ms, err := strconv.ParseInt(dl, 10, 64); err == nil && time.Now().UnixMilli() > ms {
				c.log.Debug("switchboard: request expired before it was served; dropped", "service", service, "id", req.ID)
				return nil
			}
		}
		reply, err := callReply(ctx, h, req)
		if req.ReplyTo == "" {
			return nil // a one-way message: nobody waits for a reply
		}
		var tm *transport.Message
		if err != nil {
			tm = errorReply(err, responder)
		} else {
			if reply == nil {
				reply = &Message{}
			}
			if tm, err = c.prepare(reply, time.Now()); err != nil {
				// The reply itself is bad: tell the requester.
				tm = errorReply(fmt.Errorf("invalid reply: %w", err), responder)
			} else {
				tm.Headers = withHeader(tm.Headers, hdrResponder, responder)
			}
		}
		tm.CorrelationID = req.CorrelationID
		tm.ReplyTo = ""
		err = c.transmitFit(ctx, "reply", transport.Reply(req.ReplyTo), []*transport.Message{tm}, func(m *transport.Message) error {
			c.fitReply(m)
			return c.checkSize(m)
		})
		if err != nil && permanentSendError(err) {
			return Permanent(fmt.Errorf("switchboard: reply to %s cannot be sent: %w", req.ID, err))
		}
		return err
	}
}

// errorReply returns a reply carrying a responder's error.
func errorReply(err error, responder string) *transport.Message {
	h := map[string]string{hdrError: errorText(err), hdrResponder: responder}
	var ce *codedError
	if errors.As(err, &ce) {
		h[hdrErrorCode] = ce.code
	}
	return &transport.Message{ID: newID(), Time: time.Now(), Headers: h}
}

// fitReply makes a reply fit the transport's limits, which the headers the
// client adds after the responder's own size check (correlation ID,
// responder, trace context) may pass: a reply that does not fit is
// replaced by an error reply saying so (the requester gets a
// *RemoteError matching nothing but its text), and an error text too long
// is cut.
func (c *Client) fitReply(tm *transport.Message) {
	err := c.checkSize(tm)
	if err == nil {
		return
	}
	if _, isErr := tm.Headers[hdrError]; !isErr {
		er := errorReply(fmt.Errorf("reply not sent: %w", err), tm.Headers[hdrResponder])
		er.CorrelationID = tm.CorrelationID
		for k, v := range tm.Headers { // keep the trace context
			if !isReserved(k) && len(er.Headers) < 8 {
				er.Headers[k] = v
			}
		}
		*tm = *er
	}
	if limit := c.caps.MaxMessageSize; limit > 0 {
		if over := tm.Size() - limit; over > 0 {
			text := tm.Headers[hdrError]
			tm.Headers[hdrError] = truncateUTF8(text, max(0, len(text)-over))
		}
	}
}

func callReply(ctx context.Context, h ReplyHandler, req *Message) (reply *Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			reply, err = nil, fmt.Errorf("responder panicked: %v", r)
		}
	}()
	return h(ctx, req)
}

func errorText(err error) string {
	s := err.Error()
	if len(s) > maxErrorText {
		s = s[:maxErrorText]
	}
	return s
}

// remoteError returns the responder's error carried by a reply, or nil.
func remoteError(service string, m *Message) *RemoteError {
	text, ok := m.reserved[hdrError]
	if !ok {
		return nil
	}
	return &RemoteError{Service: service, Message: text, Code: m.reserved[hdrErrorCode], Responder: m.Responder}
}

// Request sends req to service and waits for the reply, until ctx ends or,
// when ctx has no deadline, the client's request timeout. It returns the
// reply; a *RemoteError when the responder returned an error; an error
// matching ErrNoResponders when no responder ever served the service;
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
	if rt := c.currentRouter(); rt != nil {
		rt.unregister(corr)
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
	rt := c.currentRouter()
	f.setStop(func() {
		timer.Stop()
		stopWatch()
		rt.unregister(f.corr)
	})
	return f, nil
}

// startRequest validates and sends a request carrying a reply address and
// correlation ID, registered with the reply router first so that no reply
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
	rt, err := c.router(ctx)
	if err != nil {
		return time.Time{}, err
	}
	tm.CorrelationID = corr
	tm.ReplyTo = rt.addr
	if to.Kind == transport.KindQueue {
		tm.Expires = deadline // the broker may drop it unserved (R95)
	}
	tm.Headers = withHeader(tm.Headers, hdrDeadline, strconv.FormatInt(deadline.UnixMilli(), 10))
	if err := c.checkSize(tm); err != nil {
		return time.Time{}, err
	}
	if !rt.register(corr, p) {
		return time.Time{}, ErrClosed
	}
	if err := c.transmit(ctx, sendOp(to), to, []*transport.Message{tm}); err != nil {
		rt.unregister(corr)
		return time.Time{}, wrapOp(err, "send request to", to.String(), to.Name)
	}
	return deadline, nil
}

// Gathered holds the replies a Gather collected, one per responder.
type Gathered struct {
	// Replies are the successful replies, in arrival order; each one's
	// Responder names its group.
	Replies []*Message
	// Errors are the errors responders returned, in arrival order.
	Errors []*RemoteError
}

// Count returns how many replies arrived, errors included.
func (g *Gathered) Count() int { return len(g.Replies) + len(g.Errors) }

// GatherOption configures Gather.
type GatherOption func(*gatherOptions)

type gatherOptions struct {
	want    int
	timeout time.Duration
}

// WantReplies makes Gather return as soon as n replies (errors included)
// have arrived. Without it, Gather collects until its deadline.
func WantReplies(n int) GatherOption { return func(o *gatherOptions) { o.want = n } }

// GatherTimeout sets how long Gather collects when ctx has no earlier
// deadline. The default is the client's request timeout.
func GatherTimeout(d time.Duration) GatherOption { return func(o *gatherOptions) { o.timeout = d } }

// gatherer collects the replies of one Gather, at most one per responder.
type gatherer struct {
	topic  string
	want   int
	mu     sync.Mutex
	got    Gathered
	seen   map[string]struct{} // responders (or, unnamed, reply IDs) counted
	full   chan struct{}
	isFull bool
}

// deliver counts a reply unless its responder's was counted already: a
// group answers once, even when the broker delivers the request or the
// reply twice (at-least-once). Replies that name no responder (not sent by
// Switchboard) are told apart by their ID.
func (g *gatherer) deliver(m *Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isFull {
		return
	}
	who := "r:" + m.Responder
	if m.Responder == "" {
		who = "id:" + m.ID
	}
	if _, dup := g.seen[who]; dup {
		return
	}
	if g.seen == nil {
		g.seen = make(map[string]struct{})
	}
	g.seen[who] = struct{}{}
	if re := remoteError(g.topic, m); re != nil {
		g.got.Errors = append(g.got.Errors, re)
	} else {
		g.got.Replies = append(g.got.Replies, m)
	}
	if g.want > 0 && g.got.Count() >= g.want {
		g.isFull = true
		close(g.full)
	}
}

// Gather publishes req to topic and collects the replies of its responders
// (see Respond), at most one per responding group (Message.Responder; a
// reply delivered twice, or a request handled twice by a group, counts
// once): until WantReplies replies have arrived, or the deadline
// (ctx's, or GatherTimeout, whichever is earlier) passes, or ctx is
// cancelled. It always returns what arrived. The error is nil when the
// wanted count arrived, or when no count was wanted and the deadline
// passed; ErrTimeout when a wanted count did not arrive in time;
// ctx.Err() when ctx was cancelled. Zero responders is not an error. The
// Gathered is never nil, even when the request could not be sent.
func (c *Client) Gather(ctx context.Context, topic string, req *Message, opts ...GatherOption) (*Gathered, error) {
	if err := undelayed(req); err != nil {
		return nil, err
	}
	if err := validName("topic", topic); err != nil {
		return nil, err
	}
	o := gatherOptions{timeout: c.o.requestTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.want < 0 {
		return nil, invalid("WantReplies(%d): the count must not be negative", o.want)
	}
	if o.timeout <= 0 {
		return nil, invalid("GatherTimeout(%s): the timeout must be positive", o.timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	g := &gatherer{topic: topic, want: o.want, full: make(chan struct{})}
	corr := newID()
	sctx, span := c.tel.startClient(ctx, "gather", topic)
	if _, err := c.startRequest(sctx, transport.Topic(topic), req, corr, g); err != nil {
		endSpan(span, err)
		return &Gathered{}, err
	}
	var err error
	select {
	case <-g.full:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			if o.want > 0 {
				err = fmt.Errorf("%w: gather on %s", ErrTimeout, topic)
			}
		} else {
			err = ctx.Err()
		}
	case <-c.closing:
		err = ErrClosed
	}
	c.currentRouter().unregister(corr)
	g.mu.Lock()
	g.isFull = true
	out := g.got
	g.mu.Unlock()
	if err != nil && o.want > 0 && out.Count() >= o.want {
		err = nil
	}
	if span != nil {
		span.SetAttributes(attribute.Int("messaging.switchboard.replies", out.Count()))
	}
	endSpan(span, err)
	return &out, err
}

// pending is a request waiting for replies.
type pending interface{ deliver(*Message) }

// router receives the replies of a client's requests from its inbox and
// hands each to the request with its correlation ID. Replies that match no
// request (late, or duplicated) are dropped.
type router struct {
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

func (c *Client) currentRouter() *router {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rt
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

// router returns the client's reply router, opening the inbox on first
// use. The client's lock is never held across the broker call: the first
// request starts the opening (see inboxOpening) and every request waits
// for it, or for its own context.
func (c *Client) router(ctx context.Context) (*router, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.rt != nil {
		rt := c.rt
		c.mu.Unlock()
		return rt, nil
	}
	op := c.opening
	if op == nil {
		octx, cancel := context.WithTimeout(context.Background(), max(inboxOpenTimeout, c.o.requestTimeout))
		op = &inboxOpening{done: make(chan struct{}), cancel: cancel}
		c.opening = op
		c.ops.Add(1) // Shutdown waits for the opening, then closes its router
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
	return c.rt, nil
}

// openInbox opens the reply inbox and installs its router. A failed
// opening is forgotten, so that the next request tries again.
func (c *Client) openInbox(ctx context.Context, op *inboxOpening) {
	defer c.ops.Done()
	defer op.cancel()
	inbox, err := c.t.OpenInbox(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(op.done)
	c.opening = nil
	if err != nil {
		op.err = wrapOp(err, "open reply inbox", "", "")
		return
	}
	rctx, cancel := context.WithCancel(context.Background())
	rt := &router{
		inbox:   inbox,
		addr:    inbox.Address(),
		log:     c.log,
		cancel:  cancel,
		done:    make(chan struct{}),
		pending: make(map[string]pending),
	}
	go rt.run(rctx)
	c.rt = rt // closed by Shutdown, even when it began meanwhile
}

func (r *router) register(corr string, p pending) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.pending[corr] = p
	return true
}

func (r *router) unregister(corr string) {
	r.mu.Lock()
	delete(r.pending, corr)
	r.mu.Unlock()
}

func (r *router) run(ctx context.Context) {
	defer close(r.done)
	failures := 0
	for {
		msgs, err := r.inbox.Receive(ctx)
		for _, tm := range msgs {
			m := fromTransport(tm, "")
			m.Responder = m.reserved[hdrResponder]
			r.mu.Lock()
			p := r.pending[m.CorrelationID]
			r.mu.Unlock()
			if p == nil {
				r.dropped.Add(1)
				r.log.Debug("switchboard: reply matches no waiting request; dropped", "correlation_id", m.CorrelationID)
				continue
			}
			p.deliver(m)
		}
		if err == nil {
			failures = 0
			continue
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return
		}
		failures++
		wait := min(time.Duration(failures)*100*time.Millisecond, 5*time.Second)
		r.log.Warn("switchboard: reply inbox receive failed; retrying", "error", err, "wait", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return
		}
	}
}

// close fails every waiting request with ErrClosed and closes the inbox.
func (r *router) close() {
	r.mu.Lock()
	r.closed = true
	waiting := r.pending
	r.pending = map[string]pending{}
	r.mu.Unlock()
	for _, p := range waiting {
		if f, ok := p.(*Future); ok {
			f.resolve(nil, ErrClosed)
		}
	}
	r.cancel()
	<-r.done
	r.inbox.Close()
}
