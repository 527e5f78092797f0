// Package inmem is Switchboard's in-memory transport: a real broker inside
// the process, not a test double. It is concurrent and bounded, keeps
// consumer groups and queues with the same retention rules as the network
// brokers, and is the default for local runs and for the unit tests of
// services that use Switchboard.
//
// URL: "mem://" opens a new, private broker. Options, as query parameters:
//
//	max_message_size  largest message in bytes (default 1048576)
//	max_queue_length  messages a group or queue holds before Send blocks
//	                  (default 100000)
//
// To connect several clients to one in-memory broker, make a Broker with
// NewBroker and give each client its own Broker.Transport.
//
// Natively: consumer groups, durable queues, per-key (and total) order,
// delivery counts, redelivery of unacknowledged messages when a consumer
// leaves. Emulated by package messaging, as on every transport: retries,
// dead-lettering, request/reply correlation.
//
// Admin: the transport implements transport.Admin (delete, purge,
// inspect and peek) and transport.ConsumerCounter, and drops a message
// whose Expires passed (an expired request) instead of delivering it.
package inmem

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

func init() {
	transport.Register("mem", openURL)
}

// Defaults for a Broker's limits.
const (
	DefaultMaxMessageSize = 1 << 20
	DefaultMaxQueueLength = 100_000
)

// Option configures a Broker.
type Option func(*Broker)

// WithMaxMessageSize sets the largest message the broker accepts, in bytes
// of transport.Message.Size.
func WithMaxMessageSize(n int) Option { return func(b *Broker) { b.maxSize = n } }

// WithMaxQueueLength sets how many messages a group or queue holds; a Send
// to a full one waits for room (backpressure) until its context ends.
func WithMaxQueueLength(n int) Option { return func(b *Broker) { b.maxLen = n } }

// Broker holds topics, consumer groups, queues and reply inboxes in
// memory. It is safe for concurrent use.
type Broker struct {
	maxSize, maxLen int

	mu      sync.Mutex
	topics  map[string]map[string]*queue // topic -> group -> queue
	queues  map[string]*queue
	inboxes map[string]*queue
	pushes  map[string]func(*transport.Message) // push inboxes (pushinbox.go), made on first use
	nextID  atomic.Uint64
	delays  delays // messages waiting for their due time (delay.go)
}

// NewBroker returns an empty broker.
func NewBroker(opts ...Option) (*Broker, error) {
	b := &Broker{
		maxSize: DefaultMaxMessageSize,
		maxLen:  DefaultMaxQueueLength,
		topics:  make(map[string]map[string]*queue),
		queues:  make(map[string]*queue),
		inboxes: make(map[string]*queue),
	}
	for _, o := range opts {
		o(b)
	}
	if b.maxSize < 1 {
		return nil, fmt.Errorf("%w: inmem: max message size %d must be positive", transport.ErrInvalid, b.maxSize)
	}
	if b.maxLen < 1 {
		return nil, fmt.Errorf("%w: inmem: max queue length %d must be positive", transport.ErrInvalid, b.maxLen)
	}
	return b, nil
}

// Transport returns a new connection to the broker. Closing it closes its
// subscriptions and inboxes, not the broker.
func (b *Broker) Transport() transport.Transport {
	return &conn{b: b, closedCh: make(chan struct{}), subs: make(map[*subscription]struct{}), inboxes: make(map[*inbox]struct{})}
}

func openURL(_ context.Context, u *url.URL) (transport.Transport, error) {
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return nil, fmt.Errorf("%w: inmem: URL %q: mem:// takes no host or path, only options (max_message_size, max_queue_length)",
			transport.ErrInvalid, transport.RedactURL(u))
	}
	var opts []Option
	q, err := transport.Query(u)
	if err != nil {
		return nil, fmt.Errorf("%w: inmem: %v", transport.ErrInvalid, err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		n, err := strconv.Atoi(v)
		switch k {
		case "max_message_size":
			opts = append(opts, WithMaxMessageSize(n))
		case "max_queue_length":
			opts = append(opts, WithMaxQueueLength(n))
		default:
			return nil, fmt.Errorf("%w: inmem: unknown option %q; accepted: max_message_size, max_queue_length", transport.ErrInvalid, k)
		}
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%w: inmem: option %s=%q must be a positive integer", transport.ErrInvalid, k, v)
		}
	}
	b, err := NewBroker(opts...)
	if err != nil {
		return nil, err
	}
	c := b.Transport().(*conn)
	c.owned = true
	return c, nil
}

// entry is one message held by one group or queue.
type entry struct {
	msg   transport.Message // this group's copy; Body and Headers are shared, immutable
	seq   uint64
	count int  // deliveries so far
	held  bool // counted in its queue's holds (in flight to a subscription)
}

// hold records that a key has messages in flight to one subscription.
type hold struct {
	owner any // the subscription
	n     int // entries of the key in flight to owner
}

// scanLimit bounds how far past the head pop looks for a message whose key
// is not held by another subscription.
const scanLimit = 4096

// queue is a FIFO of entries with competing consumers.
type queue struct {
	max     int
	mu      sync.Mutex
	ready   []*entry // ready[head:] wait for delivery
	head    int
	seq     uint64
	waiting []chan struct{} // wake channels of blocked callers
	// holds maps each key with entries in flight to a subscription to
	// that subscription: the key's other entries go to no other
	// subscription until all of them are settled (key affinity, see pop).
	holds map[string]*hold
	// consumers counts the open subscriptions (for Admin.Inspect).
	consumers atomic.Int32
	// deleted is closed when the queue is deleted (CancelConsumers):
	// its waiting consumers return errDeleted.
	deleted chan struct{}
}

func newQueue(max int) *queue {
	return &queue{max: max, holds: make(map[string]*hold), deleted: make(chan struct{})}
}

// errDeleted: the queue was deleted under its consumer.
var errDeleted = errors.New("inmem: queue deleted")

// CancelConsumers does what a broker does when an operator deletes a
// consumer group's queue (topic and group as given to Subscribe; an empty
// group names the queue topic): the queue and the messages it holds are
// gone, and its consumers are cancelled. Like the network adapters, an
// in-memory subscription then declares its group again and goes on
// receiving what is published afterwards. It returns an error matching
// transport.ErrNotFound when there is no such group.
func (b *Broker) CancelConsumers(topic, group string) error {
	b.mu.Lock()
	var q *queue
	if group == "" {
		q = b.queues[topic]
		delete(b.queues, topic)
	} else if groups := b.topics[topic]; groups != nil {
		q = groups[group]
		delete(groups, group)
	}
	b.mu.Unlock()
	if q == nil {
		return fmt.Errorf("inmem: group %q of %q: %w", group, topic, transport.ErrNotFound)
	}
	q.mu.Lock()
	close(q.deleted)
	q.broadcast()
	q.mu.Unlock()
	return nil
}

func (q *queue) len() int { return len(q.ready) - q.head }

// broadcast wakes every blocked caller; called with q.mu held.
func (q *queue) broadcast() {
	for i, w := range q.waiting {
		select {
		case w <- struct{}{}:
		default:
		}
		q.waiting[i] = nil
	}
	q.waiting = q.waiting[:0]
}

// wait releases q.mu until the queue changes, ctx ends or closed is
// closed, and takes it again; called with q.mu held. wake is the caller's
// own channel, with a buffer of one, reused across calls; a wake-up may be
// spurious, so callers re-check their condition.
func (q *queue) wait(ctx context.Context, closed <-chan struct{}, wake chan struct{}) error {
	q.waiting = append(q.waiting, wake)
	q.mu.Unlock()
	var err error
	select {
	case <-wake:
	case <-ctx.Done():
		err = ctx.Err()
	case <-closed:
		err = transport.ErrClosed
	case <-q.deleted:
		err = errDeleted
	}
	q.mu.Lock()
	if err != nil {
		for i, w := range q.waiting {
			if w == wake {
				q.waiting = append(q.waiting[:i], q.waiting[i+1:]...)
				break
			}
		}
	}
	return err
}

// push appends copies of msgs, waiting for room while the queue is full.
// The messages' Body and Headers must already be the broker's own.
func (q *queue) push(ctx context.Context, closed <-chan struct{}, msgs []transport.Message) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var wake chan struct{}
	// One allocation for the entries of a batch, not one per message
	// (a slab lives until the last of its entries is dropped).
	slab := make([]entry, len(msgs))
	for i := range msgs {
		for q.len() >= q.max {
			if wake == nil {
				wake = make(chan struct{}, 1)
			}
			if err := q.wait(ctx, closed, wake); err != nil {
				return fmt.Errorf("inmem: queue full: %w", err)
			}
		}
		q.seq++
		e := &slab[i]
		e.msg, e.seq = msgs[i], q.seq
		q.ready = append(q.ready, e)
	}
	q.broadcast()
	return nil
}

// tryPush appends a copy of m unless the queue is full, and reports
// whether it did; a deleted queue drops m (reported as done). m's Body and
// Headers must already be the broker's own.
func (q *queue) tryPush(m transport.Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-q.deleted:
		return true
	default:
	}
	if q.len() >= q.max {
		return false
	}
	q.seq++
	q.ready = append(q.ready, &entry{msg: m, seq: q.seq})
	q.broadcast()
	return true
}

// requeue puts released entries back at the front, in their original
// order, so that a key's order survives a consumer leaving.
func (q *queue) requeue(es []*entry) {
	if len(es) == 0 {
		return
	}
	slices.SortFunc(es, func(a, b *entry) int { return cmpUint(a.seq, b.seq) })
	q.mu.Lock()
	defer q.mu.Unlock()
	q.unhold(es)
	rest := q.ready[q.head:]
	merged := make([]*entry, 0, len(es)+len(rest))
	i, j := 0, 0
	for i < len(es) || j < len(rest) {
		if j == len(rest) || (i < len(es) && es[i].seq < rest[j].seq) {
			merged = append(merged, es[i])
			i++
		} else {
			merged = append(merged, rest[j])
			j++
		}
	}
	q.ready, q.head = merged, 0
	q.broadcast()
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// release settles entries acknowledged by their subscription: their keys
// may go to another subscription once nothing of theirs is in flight.
func (q *queue) release(es []*entry) {
	if len(es) == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.unhold(es) {
		q.broadcast()
	}
}

// unhold drops es from their keys' holds, reporting whether a key was
// freed; called with q.mu held.
func (q *queue) unhold(es []*entry) bool {
	freed := false
	for _, e := range es {
		if !e.held {
			continue
		}
		e.held = false
		if h := q.holds[e.msg.Key]; h != nil {
			if h.n--; h.n <= 0 {
				delete(q.holds, e.msg.Key)
				freed = true
			}
		}
	}
	return freed
}

// pop takes up to max entries, waiting on wake until there is one. It
// appends them to buf[:0] (the caller's buffer, reused across calls).
//
// With a non-nil owner (a subscription), pop keeps key affinity: an entry
// whose key has entries in flight to another owner is skipped (it stays
// in place, in order), and the keys of the entries taken are held by owner
// until it acknowledges or releases all of them. So the messages of a key
// are in flight to one member of a group at a time, and a key moves to
// another member only between two of its messages: one handler at a time
// per key and publication order hold across the members of a group, while
// different keys spread across them.
func (q *queue) pop(ctx context.Context, closed <-chan struct{}, wake chan struct{}, max int, owner any, buf []*entry) ([]*entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		out, dropped := q.take(max, owner, buf[:0])
		if len(out) > 0 {
			for _, e := range out {
				e.count++
			}
			q.broadcast() // room for blocked senders
			return out, nil
		}
		if dropped > 0 {
			q.broadcast()
			continue // expired entries made room; look again
		}
		if err := q.wait(ctx, closed, wake); err != nil {
			return nil, err
		}
	}
}

// take appends to out up to max entries for owner, removed from the ready
// list, and drops the expired entries it passes (requests past their
// deadline); called with q.mu held.
func (q *queue) take(max int, owner any, out []*entry) (_ []*entry, dropped int) {
	if q.len() == 0 {
		return out, 0
	}
	if owner == nil {
		n := min(max, q.len())
		for i := q.head; i < q.head+n; i++ {
			if e := q.ready[i]; expired(e) {
				dropped++
				e.msg.Body, e.msg.Headers = nil, nil
			} else {
				out = append(out, e)
			}
			q.ready[i] = nil
		}
		q.head += n
		q.compact()
		return out, dropped
	}
	kept := 0 // entries skipped, moved down to q.ready[q.head:q.head+kept]
	end := q.head
	limit := min(len(q.ready), q.head+scanLimit)
	for ; end < limit && len(out) < max; end++ {
		e := q.ready[end]
		if expired(e) {
			dropped++
			e.msg.Body, e.msg.Headers = nil, nil
			continue
		}
		if k := e.msg.Key; k != "" {
			h := q.holds[k]
			if h != nil && h.owner != owner {
				q.ready[q.head+kept] = e
				kept++
				continue
			}
			if h == nil {
				h = &hold{owner: owner}
				q.holds[k] = h
			}
			h.n++
			e.held = true
		}
		out = append(out, e)
	}
	// The skipped entries go back just before end, in their order.
	copy(q.ready[end-kept:end], q.ready[q.head:q.head+kept])
	for i := q.head; i < end-kept; i++ {
		q.ready[i] = nil
	}
	q.head = end - kept
	q.compact()
	return out, dropped
}

// compact drops the consumed front of the ready list once it dominates.
func (q *queue) compact() {
	if q.head > 1024 && q.head*2 > len(q.ready) {
		q.ready = append(q.ready[:0:0], q.ready[q.head:]...)
		q.head = 0
	}
}

// expired reports whether e's message expired (a request past its
// deadline): it is dropped instead of delivered.
func expired(e *entry) bool {
	return !e.msg.Expires.IsZero() && time.Now().After(e.msg.Expires)
}
