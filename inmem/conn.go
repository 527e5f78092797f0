package inmem

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/switchboard-go/switchboard/transport"
)

// conn is one client's connection to a Broker.
type conn struct {
	b        *Broker
	mu       sync.Mutex
	closed   bool
	closedCh chan struct{} // closed by Close
	owned    bool          // the broker is this conn's own (mem://): Close stops its delays
	subs     map[*subscription]struct{}
	inboxes  map[*inbox]struct{}
}

func (c *conn) done() <-chan struct{} { return c.closedCh }

func (c *conn) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("inmem: %w", transport.ErrClosed)
	}
	return nil
}

// Send implements transport.Transport.
func (c *conn) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	if err := c.check(); err != nil {
		return err
	}
	for _, m := range msgs {
		if n := m.Size(); n > c.b.maxSize {
			return fmt.Errorf("inmem: message %s is %d bytes, over the limit of %d: %w", m.ID, n, c.b.maxSize, transport.ErrMessageTooLarge)
		}
	}
	// The broker keeps its own Body and Headers; the caller may reuse
	// theirs once Send returns. push copies the structs into its entries.
	var one [1]transport.Message
	copies := one[:]
	if len(msgs) > 1 {
		copies = make([]transport.Message, len(msgs))
	}
	for i, m := range msgs {
		copies[i] = ownCopy(m)
	}
	if to.Kind != transport.KindReply {
		if now, later := c.b.delays.split(copies); len(later) > 0 {
			if err := c.b.delays.add(c.b, to, later); err != nil {
				return err
			}
			copies = now
		}
	}
	return c.b.deliver(ctx, c.done(), to, copies)
}

// deliver appends msgs, the broker's own copies, to the queues of to: every
// group of a topic, a queue, or a reply inbox.
func (b *Broker) deliver(ctx context.Context, closed <-chan struct{}, to transport.Address, copies []transport.Message) error {
	if len(copies) == 0 {
		return nil
	}
	switch to.Kind {
	case transport.KindTopic:
		b.mu.Lock()
		groups := b.topics[to.Name]
		if groups == nil {
			groups = make(map[string]*queue)
			b.topics[to.Name] = groups
		}
		qs := make([]*queue, 0, len(groups))
		for _, q := range groups {
			qs = append(qs, q)
		}
		b.mu.Unlock()
		for _, q := range qs {
			if err := q.push(ctx, closed, copies); err != nil {
				return err
			}
		}
		return nil
	case transport.KindQueue:
		b.mu.Lock()
		q := b.queues[to.Name]
		b.mu.Unlock()
		if q == nil {
			return fmt.Errorf("inmem: queue %q: %w", to.Name, transport.ErrNotFound)
		}
		return q.push(ctx, closed, copies)
	case transport.KindReply:
		b.mu.Lock()
		q := b.inboxes[to.Name]
		push := b.pushes[to.Name]
		b.mu.Unlock()
		if push != nil {
			for _, cp := range copies {
				push(&cp)
			}
			return nil
		}
		if q == nil {
			return nil // the requester is gone: the reply is dropped
		}
		return q.push(ctx, closed, copies)
	}
	return fmt.Errorf("inmem: %w: address kind %v", transport.ErrInvalid, to.Kind)
}

// ownCopy returns m with its own Body and Headers, and no receive fields.
func ownCopy(m *transport.Message) transport.Message {
	cp := *m
	cp.Body = slices.Clone(m.Body)
	if m.Headers != nil {
		cp.Headers = make(map[string]string, len(m.Headers))
		for k, v := range m.Headers {
			cp.Headers[k] = v
		}
	}
	cp.DeliveryCount, cp.AckID, cp.AsFunc = 0, nil, nil
	return cp
}

// Declare implements transport.Transport.
func (c *conn) Declare(_ context.Context, a transport.Address) error {
	if err := c.check(); err != nil {
		return err
	}
	if a.Kind != transport.KindQueue {
		return fmt.Errorf("inmem: %w: Declare takes a queue, not a %v", transport.ErrInvalid, a.Kind)
	}
	c.b.mu.Lock()
	if c.b.queues[a.Name] == nil {
		c.b.queues[a.Name] = newQueue(c.b.maxLen)
	}
	c.b.mu.Unlock()
	return nil
}

// Subscribe implements transport.Transport.
func (c *conn) Subscribe(_ context.Context, from transport.Address, group string, _ transport.SubscribeOptions) (transport.Subscription, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	q, err := c.b.consumerQueue(from, group)
	if err != nil {
		return nil, err
	}
	s := &subscription{c: c, from: from, group: group, q: q, outstanding: make(map[*entry]struct{}), closed: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("inmem: %w", transport.ErrClosed)
	}
	c.subs[s] = struct{}{}
	q.consumers.Add(1)
	return s, nil
}

// consumerQueue returns the queue of a group of a topic, or of a queue,
// creating it if missing.
func (b *Broker) consumerQueue(from transport.Address, group string) (*queue, error) {
	var q *queue
	b.mu.Lock()
	defer b.mu.Unlock()
	switch from.Kind {
	case transport.KindTopic:
		groups := b.topics[from.Name]
		if groups == nil {
			groups = make(map[string]*queue)
			b.topics[from.Name] = groups
		}
		if q = groups[group]; q == nil {
			q = newQueue(b.maxLen)
			groups[group] = q
		}
	case transport.KindQueue:
		if q = b.queues[from.Name]; q == nil {
			q = newQueue(b.maxLen)
			b.queues[from.Name] = q
		}
	default:
		return nil, fmt.Errorf("inmem: %w: cannot subscribe to a %v", transport.ErrInvalid, from.Kind)
	}
	return q, nil
}

// OpenInbox implements transport.Transport.
func (c *conn) OpenInbox(context.Context) (transport.Inbox, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	addr := "inbox-" + strconv.FormatUint(c.b.nextID.Add(1), 10)
	q := newQueue(c.b.maxLen)
	c.b.mu.Lock()
	c.b.inboxes[addr] = q
	c.b.mu.Unlock()
	in := &inbox{c: c, addr: addr, q: q, closed: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("inmem: %w", transport.ErrClosed)
	}
	c.inboxes[in] = struct{}{}
	return in, nil
}

// Capabilities implements transport.Transport.
func (c *conn) Capabilities() transport.Capabilities {
	return transport.Capabilities{
		Name:           "inmem",
		MaxMessageSize: c.b.maxSize,
		OrderedByKey:   true,
		DeliveryCount:  true,
		MaxDelay:       MaxDelay,
	}
}

// As implements transport.Transport: **Broker gives the broker.
func (c *conn) As(target any) bool {
	if p, ok := target.(**Broker); ok {
		*p = c.b
		return true
	}
	return false
}

// Close implements transport.Transport.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	subs := c.subs
	inboxes := c.inboxes
	c.subs, c.inboxes = nil, nil
	c.mu.Unlock()
	close(c.closedCh)
	if c.owned {
		c.b.delays.stop()
	}
	for s := range subs {
		s.Close()
	}
	for in := range inboxes {
		in.Close()
	}
	return nil
}

// subscription is a consumer of one group or queue.
type subscription struct {
	c           *conn
	from        transport.Address
	group       string
	q           *queue // guarded by mu: replaced when the queue is deleted
	mu          sync.Mutex
	outstanding map[*entry]struct{}
	isClosed    bool
	closed      chan struct{}
	wake        chan struct{} // for Receive, which one goroutine calls at a time
	// Receive's buffers, reused from one call to the next (Receive is
	// called by one goroutine at a time; see transport.Subscription).
	taken []*entry
	out   []*transport.Message
}

// Receive implements transport.Subscription.
func (s *subscription) Receive(ctx context.Context, max int) ([]*transport.Message, error) {
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		return nil, fmt.Errorf("inmem: %w", transport.ErrClosed)
	}
	q := s.q
	s.mu.Unlock()
	es, err := q.pop(ctx, s.closed, s.wake, max, s, s.taken)
	for errors.Is(err, errDeleted) {
		// The broker deleted the queue (CancelConsumers): what this
		// subscription holds of it is gone with it. Declare the group
		// again and go on.
		if q, err = s.c.b.consumerQueue(s.from, s.group); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.q.consumers.Add(-1)
		q.consumers.Add(1)
		s.q, s.outstanding = q, make(map[*entry]struct{})
		s.mu.Unlock()
		es, err = q.pop(ctx, s.closed, s.wake, max, s, s.taken)
	}
	if err != nil {
		return nil, err
	}
	s.taken = es
	clear(s.out) // the previous batch: the caller is done with the slice
	out := s.out[:0]
	s.mu.Lock()
	if s.isClosed || s.q != q { // closed while waiting: give them back
		s.mu.Unlock()
		q.requeue(es)
		clear(es)
		return nil, fmt.Errorf("inmem: %w", transport.ErrClosed)
	}
	for i, e := range es {
		s.outstanding[e] = struct{}{}
		if e.count == 1 {
			// First delivery: nobody else holds the entry's message.
			e.msg.DeliveryCount = 1
			e.msg.AckID = e
			out = append(out, &e.msg)
		} else {
			// A redelivery: an earlier consumer may still read its copy.
			m := e.msg
			m.DeliveryCount = e.count
			m.AckID = e
			out = append(out, &m)
		}
		es[i] = nil // the buffer keeps no entry alive
	}
	s.mu.Unlock()
	s.out = out
	return out, nil
}

// Ack implements transport.Subscription.
func (s *subscription) Ack(_ context.Context, ids []any) error {
	s.mu.Lock()
	done := make([]*entry, 0, len(ids))
	for _, id := range ids {
		if e, ok := id.(*entry); ok {
			if _, mine := s.outstanding[e]; mine {
				delete(s.outstanding, e)
				// Its batch's entries share one allocation (queue.push):
				// an acknowledged entry keeps no body or headers alive
				// while another of the batch is still held.
				e.msg.Body, e.msg.Headers = nil, nil
				done = append(done, e)
			}
		}
	}
	q := s.q
	s.mu.Unlock()
	q.release(done) // their keys may move to another member
	return nil
}

// Nack implements transport.Subscription.
func (s *subscription) Nack(_ context.Context, ids []any) error {
	s.mu.Lock()
	var back []*entry
	for _, id := range ids {
		if e, ok := id.(*entry); ok {
			if _, mine := s.outstanding[e]; mine {
				delete(s.outstanding, e)
				back = append(back, e)
			}
		}
	}
	q := s.q
	s.mu.Unlock()
	q.requeue(back)
	return nil
}

// Close implements transport.Subscription: what is unacked goes back.
func (s *subscription) Close() error {
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		return nil
	}
	s.isClosed = true
	close(s.closed)
	back := make([]*entry, 0, len(s.outstanding))
	for e := range s.outstanding {
		back = append(back, e)
	}
	s.outstanding = nil
	q := s.q
	s.mu.Unlock()
	q.consumers.Add(-1)
	q.requeue(back)
	s.c.mu.Lock()
	delete(s.c.subs, s)
	s.c.mu.Unlock()
	return nil
}

// inbox is a reply inbox.
type inbox struct {
	c      *conn
	addr   string
	q      *queue
	once   sync.Once
	closed chan struct{}
	wake   chan struct{}
	taken  []*entry // Receive's buffer (one goroutine receives at a time)
}

// Address implements transport.Inbox.
func (in *inbox) Address() string { return in.addr }

// Receive implements transport.Inbox.
func (in *inbox) Receive(ctx context.Context) ([]*transport.Message, error) {
	select {
	case <-in.closed:
		return nil, fmt.Errorf("inmem: %w", transport.ErrClosed)
	default:
	}
	if in.q == nil { // a push inbox: its replies go to its deliver function
		select {
		case <-in.closed:
			return nil, fmt.Errorf("inmem: %w", transport.ErrClosed)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	es, err := in.q.pop(ctx, in.closed, in.wake, 64, nil, in.taken)
	if err != nil {
		return nil, err
	}
	out := make([]*transport.Message, len(es))
	for i, e := range es {
		out[i] = &e.msg
		es[i] = nil
	}
	in.taken = es
	return out, nil
}

// Close implements transport.Inbox: the inbox is deleted.
func (in *inbox) Close() error {
	in.once.Do(func() {
		close(in.closed)
		in.c.b.mu.Lock()
		delete(in.c.b.inboxes, in.addr)
		delete(in.c.b.pushes, in.addr)
		in.c.b.mu.Unlock()
		in.c.mu.Lock()
		delete(in.c.inboxes, in)
		in.c.mu.Unlock()
	})
	return nil
}
