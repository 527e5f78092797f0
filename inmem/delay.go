package inmem

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// MaxDelay is the longest delay the in-memory broker holds a message for
// (transport.Capabilities.MaxDelay): the same maximum as package
// messaging's, so that every delay is native here.
const MaxDelay = 7 * 24 * time.Hour

// MaxPendingDelayed bounds how many delayed messages one broker holds at
// once; a Send beyond it fails with an error matching
// transport.ErrUnavailable.
const MaxPendingDelayed = 1_000_000

// delayed is one message waiting for its due time.
type delayed struct {
	to  transport.Address
	msg transport.Message
	seq uint64 // send order, for equal due times
	// q is set on a message due but not yet delivered because its group
	// or queue was full: it goes to that one queue, at the next try.
	q *queue
}

// delayRetry is how long a due message waits before the next try when
// its group or queue is full (max_queue_length).
const delayRetry = 20 * time.Millisecond

// delays holds a broker's delayed messages in a heap ordered by due time,
// then send order, with one timer (time.AfterFunc: no goroutine waits)
// set to the earliest due time. Due messages are delivered in that order,
// one delivery at a time (deliverMu), so that a key's messages reach
// their groups by due time, then send order. Delivery never waits: a due
// message whose group or queue is full is kept (retry), with the later
// due messages to that queue behind it, and tried again every delayRetry;
// other queues' messages go on. stop (Close of a mem:// transport, whose
// broker is its own) drops what is pending and stops the timer.
type delays struct {
	mu        sync.Mutex
	h         delayHeap
	retry     []*delayed // due, their queue full: in due-time, send order
	seq       uint64
	timer     *time.Timer
	next      time.Time // when timer fires; zero when not set
	stopped   bool
	deliverMu sync.Mutex
}

// split separates the messages due later than now from the others. It
// returns msgs itself when none is delayed.
func (d *delays) split(msgs []transport.Message) (now, later []transport.Message) {
	t := time.Now()
	n := 0
	for i := range msgs {
		if msgs[i].DeliverAt.After(t) {
			n++
		}
	}
	if n == 0 {
		return msgs, nil
	}
	now = make([]transport.Message, 0, len(msgs)-n)
	later = make([]transport.Message, 0, n)
	for _, m := range msgs {
		if m.DeliverAt.After(t) {
			later = append(later, m)
		} else {
			now = append(now, m)
		}
	}
	return now, later
}

// add holds msgs until their due times.
func (d *delays) add(b *Broker, to transport.Address, msgs []transport.Message) error {
	switch to.Kind {
	case transport.KindTopic:
	case transport.KindQueue:
		b.mu.Lock()
		q := b.queues[to.Name]
		b.mu.Unlock()
		if q == nil {
			return fmt.Errorf("inmem: queue %q: %w", to.Name, transport.ErrNotFound)
		}
	default:
		return fmt.Errorf("inmem: %w: a %v takes no delayed messages", transport.ErrInvalid, to.Kind)
	}
	limit := time.Now().Add(MaxDelay + time.Minute) // a minute's slack for the caller's clock reading
	for i := range msgs {
		if msgs[i].DeliverAt.After(limit) {
			return fmt.Errorf("inmem: message %s: %w: due in %v, over the maximum delay %v", msgs[i].ID, transport.ErrInvalid,
				time.Until(msgs[i].DeliverAt).Round(time.Second), MaxDelay)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.h)+len(msgs) > MaxPendingDelayed {
		return fmt.Errorf("inmem: %w: %d delayed messages pending; the limit is %d", transport.ErrUnavailable, len(d.h), MaxPendingDelayed)
	}
	for _, m := range msgs {
		d.seq++
		heap.Push(&d.h, &delayed{to: to, msg: m, seq: d.seq})
	}
	d.arm(b)
	return nil
}

// arm sets the timer to the earliest due time, or to the next try of
// the retry list. d.mu is held.
func (d *delays) arm(b *Broker) {
	if d.stopped || len(d.h) == 0 && len(d.retry) == 0 {
		return
	}
	var first time.Time
	if len(d.h) > 0 {
		first = d.h[0].msg.DeliverAt
	}
	if len(d.retry) > 0 {
		if at := time.Now().Add(delayRetry); first.IsZero() || at.Before(first) {
			first = at
		}
	}
	if !d.next.IsZero() && !first.Before(d.next) {
		return
	}
	d.next = first
	if d.timer == nil {
		d.timer = time.AfterFunc(time.Until(first), func() { d.fire(b) })
	} else {
		d.timer.Reset(time.Until(first))
	}
}

// stop drops the pending messages and stops the timer.
func (d *delays) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	d.h, d.retry = nil, nil
	if d.timer != nil {
		d.timer.Stop()
	}
}

// fire delivers every due message, in order, without waiting for room,
// then sets the timer again.
func (d *delays) fire(b *Broker) {
	d.deliverMu.Lock()
	defer d.deliverMu.Unlock()
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.next = time.Time{}
	now := time.Now()
	due := d.retry
	d.retry = nil
	for len(d.h) > 0 && !d.h[0].msg.DeliverAt.After(now) {
		due = append(due, heap.Pop(&d.h).(*delayed))
	}
	d.mu.Unlock()
	slices.SortStableFunc(due, func(a, b *delayed) int {
		if c := a.msg.DeliverAt.Compare(b.msg.DeliverAt); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	full := map[*queue]bool{}
	var retry []*delayed
	for _, m := range due {
		msg := m.msg
		msg.DeliverAt = time.Time{}
		targets := []*queue{m.q}
		if m.q == nil {
			targets = b.queuesOf(m.to)
		}
		for _, q := range targets {
			// A queue deleted since (Admin.DeleteQueue, CancelConsumers)
			// drops the message, as it drops the messages it held.
			if full[q] || !q.tryPush(msg) {
				full[q] = true
				retry = append(retry, &delayed{to: m.to, msg: m.msg, seq: m.seq, q: q})
			}
		}
	}
	d.mu.Lock()
	if !d.stopped {
		d.retry = retry
	}
	d.arm(b)
	d.mu.Unlock()
}

// queuesOf returns the queues a message to to goes to now: every group of
// a topic (R1 at the due time), or the queue; none for a queue deleted.
func (b *Broker) queuesOf(to transport.Address) []*queue {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch to.Kind {
	case transport.KindTopic:
		qs := make([]*queue, 0, len(b.topics[to.Name]))
		for _, q := range b.topics[to.Name] {
			qs = append(qs, q)
		}
		return qs
	case transport.KindQueue:
		if q := b.queues[to.Name]; q != nil {
			return []*queue{q}
		}
	}
	return nil
}

type delayHeap []*delayed

func (h delayHeap) Len() int { return len(h) }
func (h delayHeap) Less(i, j int) bool {
	if c := h[i].msg.DeliverAt.Compare(h[j].msg.DeliverAt); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h delayHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)   { *h = append(*h, x.(*delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
