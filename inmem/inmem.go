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
	nextID  atomic.Uint64
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
	for k, vs := range u.Query() {
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
	return b.Transport(), nil
}

// entry is one message held by one group or queue.
type entry struct {
	msg   transport.Message // this group's copy; Body and Headers are shared, immutable
	seq   uint64
	count int // deliveries so far
}

// queue is a FIFO of entries with competing consumers.
type queue struct {
	max     int
	mu      sync.Mutex
	ready   []*entry // ready[head:] wait for delivery
	head    int
	seq     uint64
	waiting []chan struct{} // wake channels of blocked callers
	// consumers counts the open subscriptions (for Admin.Inspect).
	consumers atomic.Int32
}

func newQueue(max int) *queue { return &queue{max: max} }

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
		q.ready = append(q.ready, &entry{msg: msgs[i], seq: q.seq})
	}
	q.broadcast()
	return nil
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

// pop takes up to max entries, waiting on wake until there is one.
func (q *queue) pop(ctx context.Context, closed <-chan struct{}, wake chan struct{}, max int) ([]*entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*entry
	for len(out) == 0 {
		for q.len() == 0 {
			if err := q.wait(ctx, closed, wake); err != nil {
				return nil, err
			}
		}
		n := min(max, q.len())
		out = make([]*entry, 0, n)
		for i := q.head; i < q.head+n; i++ {
			if e := q.ready[i]; !expired(e) {
				out = append(out, e)
			}
			q.ready[i] = nil
		}
		q.head += n
	}
	if q.head > 1024 && q.head*2 > len(q.ready) {
		q.ready = append(q.ready[:0:0], q.ready[q.head:]...)
		q.head = 0
	}
	for _, e := range out {
		e.count++
	}
	q.broadcast() // room for blocked senders
	return out, nil
}

// expired reports whether e's message expired (a request past its
// deadline): it is dropped instead of delivered.
func expired(e *entry) bool {
	return !e.msg.Expires.IsZero() && time.Now().After(e.msg.Expires)
}
