package messaging

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// MaxDelay is the longest delay a message may have: Publish and Notify
// fail with an error matching ErrInvalid, naming this maximum, for a
// message whose DeliverAt is further ahead (R115). It is the same on every
// transport.
const MaxDelay = 7 * 24 * time.Hour

// Reserved headers of delayed delivery.
const (
	hdrDeliverAt = "sb-deliver-at" // due time, Unix nanoseconds, on every delayed message
	hdrDelayTo   = "sb-delay-to"   // in a delay queue: "topic:<name>" or "queue:<name>"
	hdrDelaySeq  = "sb-delay-seq"  // in a delay queue: publish order, for equal due times
	hdrDelayKey  = "sb-delay-key"  // in a delay queue: the message's Key
)

// delayHold is the longest a scheduler holds a message of a delay queue
// unacknowledged: one due later is sent to the delay queue again after
// this long. It stays well under RabbitMQ's consumer_timeout (30 min by
// default), SQS's 12 h visibility maximum, and bounds how long a held
// message pins Kafka's commits. A variable for tests only.
var delayHold = 10 * time.Minute

// Tuning of the delay queue scheduler (see scheduler).
const (
	// delayCapacity is how many messages one scheduler holds at once.
	delayCapacity = 256
	// delayRetry is how long a scheduler waits before trying a failed
	// forward, or a failed subscription to its delay queue, again.
	delayRetry = time.Second
	// delayEvictEvery, delayEvictMax and delayEvictHorizon make room in a
	// full hold, so that messages due soon never wait behind messages due
	// later (R116): while the scheduler holds delayCapacity messages, it
	// sends up to delayEvictMax of those due latest, and more than
	// delayEvictHorizon ahead, back to the delay queue once per
	// delayEvictEvery, and receives as many others in their place.
	delayEvictEvery   = time.Second
	delayEvictMax     = delayCapacity / 2
	delayEvictHorizon = time.Minute
)

// DelayQueue returns the name of the queue that holds, on a transport
// without native delays as long as theirs (transport.Capabilities.MaxDelay),
// the delayed messages published to topic name or sent to recipient
// name until they are due: name + ".sb-delay". The consuming clients of
// name (Subscribe, Listen) forward them when due.
func DelayQueue(name string) string { return name + ".sb-delay" }

// lastDelaySeq orders the delayed messages this process publishes: a
// number greater than every earlier one, near the Unix time in
// nanoseconds, so that publish order is comparable across clients within
// the precision of their clocks.
var lastDelaySeq atomic.Int64

func nextDelaySeq(now time.Time) int64 {
	for {
		last := lastDelaySeq.Load()
		n := max(now.UnixNano(), last+1)
		if lastDelaySeq.CompareAndSwap(last, n) {
			return n
		}
	}
}

// checkDelay validates m.DeliverAt against now and returns the due time
// to set on the transport message: zero for a message due now.
func checkDelay(m *Message, now time.Time) (time.Time, error) {
	if m.DeliverAt.IsZero() || !m.DeliverAt.After(now) {
		return time.Time{}, nil
	}
	if d := m.DeliverAt.Sub(now); d > MaxDelay {
		name := "a message"
		if m.ID != "" {
			name = "message " + m.ID
		}
		return time.Time{}, invalid("%s: DeliverAt is %v ahead; the maximum delay is %v (MaxDelay, 7 days)", name, d.Round(time.Second), MaxDelay)
	}
	return m.DeliverAt, nil
}

// undelayed refuses a request due in the future: requests and replies
// cannot be delayed.
func undelayed(req *Message) error {
	if req != nil && req.DeliverAt.After(time.Now()) {
		return invalid("message %s: DeliverAt is in the future: requests and replies cannot be delayed", req.ID)
	}
	return nil
}

// sendDelayed sends msgs, some of which are due later: those due now and
// those the transport delays natively go to it first, in order; the rest
// then go to the delay queue of to.
func (c *Client) sendDelayed(ctx context.Context, to transport.Address, msgs []*transport.Message, now time.Time) error {
	direct := make([]*transport.Message, 0, len(msgs))
	var stored []*transport.Message
	for _, tm := range msgs {
		if tm.DeliverAt.IsZero() || c.caps.MaxDelay > 0 && tm.DeliverAt.Sub(now) <= c.caps.MaxDelay {
			direct = append(direct, tm)
			continue
		}
		st, err := c.toDelayQueue(to, tm, now)
		if err != nil {
			return err
		}
		stored = append(stored, st)
	}
	if len(direct) > 0 {
		if err := c.transmit(ctx, sendOp(to), to, direct); err != nil {
			return err
		}
	}
	if len(stored) == 0 {
		return nil
	}
	store := transport.Queue(DelayQueue(to.Name))
	if err := c.declareQueue(ctx, store.Name); err != nil {
		return err
	}
	err := c.transmit(ctx, sendOp(to), store, stored)
	if errors.Is(err, transport.ErrNotFound) {
		c.declared.Delete(store.Name)
		if err = c.declareQueue(ctx, store.Name); err == nil {
			err = c.transmit(ctx, sendOp(to), store, stored)
		}
	}
	return err
}

// toDelayQueue returns the message to put in to's delay queue for tm. Its
// key is its ID, so that no broker holds other messages back behind it
// (an SQS FIFO message group, a Kafka partition's order).
func (c *Client) toDelayQueue(to transport.Address, tm *transport.Message, now time.Time) (*transport.Message, error) {
	st := *tm
	st.DeliverAt = time.Time{}
	st.Key = tm.ID
	st.Headers = make(map[string]string, len(tm.Headers)+3)
	maps.Copy(st.Headers, tm.Headers)
	st.Headers[hdrDelayTo] = to.String()
	st.Headers[hdrDelaySeq] = strconv.FormatInt(nextDelaySeq(now), 10)
	if tm.Key != "" {
		st.Headers[hdrDelayKey] = tm.Key
	}
	return &st, c.checkSize(&st)
}

// declareQueue declares a queue once per client.
func (c *Client) declareQueue(ctx context.Context, name string) error {
	if _, ok := c.declared.Load(name); ok {
		return nil
	}
	if err := c.t.Declare(ctx, transport.Queue(name)); err != nil {
		return err
	}
	c.declared.Store(name, struct{}{})
	return nil
}

// scheduler forwards the messages of one delay queue to their destination
// when they are due (R118). Every client that consumes a topic or a
// recipient runs one on its delay queue; the schedulers of several
// clients compete for its messages, as consumers of one queue do.
//
// It holds up to delayCapacity messages unacknowledged, each until its due
// time but at most delayHold: then it forwards the due ones, in order of
// due time, then publish order (R121), and acknowledges each only after
// the broker accepted its forward; one due later it sends to the delay
// queue again and acknowledges. What it holds when it stops goes back to
// the broker with the subscription's Close, for the next scheduler.
type scheduler struct {
	c      *Client
	store  transport.Address
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// startScheduler starts the scheduler of the delay queue of target, in the
// background: it declares and subscribes to the queue, trying again
// until stop while the broker refuses.
func (c *Client) startScheduler(target transport.Address) *scheduler {
	s := &scheduler{c: c, store: transport.Queue(DelayQueue(target.Name)), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.run()
	return s
}

// heldMsg is one message a scheduler holds.
type heldMsg struct {
	tm     *transport.Message
	to     transport.Address
	due    time.Time
	seq    int64
	fireAt time.Time // when to forward or cycle it
}

func (s *scheduler) run() {
	defer close(s.done)
	log := s.c.log.With("delay_queue", s.store.Name)
	var ts transport.Subscription
	for {
		err := s.c.t.Declare(s.ctx, s.store)
		if err == nil {
			ts, err = s.c.t.Subscribe(s.ctx, s.store, "", transport.SubscribeOptions{MaxInFlight: delayCapacity, LowVolume: true})
		}
		if err == nil {
			break
		}
		if s.ctx.Err() != nil {
			return
		}
		log.Warn("switchboard: delay queue scheduler cannot subscribe; trying again", "error", err)
		if !sleepCtx(s.ctx, delayRetry) {
			return
		}
	}
	defer ts.Close() // releases what is held

	want := make(chan int)
	got := make(chan []*transport.Message)
	go func() {
		defer close(got)
		for {
			var n int
			select {
			case n = <-want:
			case <-s.ctx.Done():
				return
			}
			msgs, err := ts.Receive(s.ctx, n)
			if err != nil {
				if s.ctx.Err() != nil || errors.Is(err, transport.ErrClosed) {
					return
				}
				log.Warn("switchboard: delay queue receive failed; trying again", "error", err)
				if !sleepCtx(s.ctx, delayRetry) {
					return
				}
			}
			select {
			case got <- msgs:
			case <-s.ctx.Done():
				return
			}
		}
	}()
	defer func() {
		for range got { // wait for the receiver; ts.Close releases what it got
		}
	}()

	var held heldHeap
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	asking := false
	var nextEvict time.Time // when a full hold may be thinned next
	for {
		if !asking && len(held) < delayCapacity {
			select {
			case want <- delayCapacity - len(held):
				asking = true
			case <-s.ctx.Done():
				return
			}
		}
		if len(held) > 0 {
			at := held[0].fireAt
			if len(held) >= delayCapacity {
				if nextEvict.IsZero() {
					nextEvict = time.Now().Add(delayEvictEvery)
				}
				if nextEvict.Before(at) {
					at = nextEvict
				}
			}
			timer.Reset(time.Until(at))
		} else {
			timer.Stop()
		}
		select {
		case msgs, ok := <-got:
			if !ok {
				return
			}
			asking = false
			now := time.Now()
			var bad []any
			for _, tm := range msgs {
				p, ok := parsePending(tm, now)
				if !ok {
					log.Error("switchboard: delay queue message without a valid destination dropped", "id", tm.ID)
					bad = append(bad, tm.AckID)
					continue
				}
				heap.Push(&held, p)
			}
			if len(bad) > 0 {
				s.ack(ts, bad, log)
			}
		case <-timer.C:
		case <-s.ctx.Done():
			return
		}
		s.fire(ts, &held, log)
		if len(held) < delayCapacity {
			nextEvict = time.Time{}
		} else if now := time.Now(); !nextEvict.IsZero() && !now.Before(nextEvict) {
			s.evict(ts, &held, now, log)
			nextEvict = now.Add(delayEvictEvery)
		}
	}
}

// evict sends up to delayEvictMax of the held messages due latest, and
// more than delayEvictHorizon from now, back to the delay queue, so that
// the scheduler receives the messages behind them (R116: a full hold of
// long delays never keeps a short one waiting in the queue).
func (s *scheduler) evict(ts transport.Subscription, held *heldHeap, now time.Time, log *slog.Logger) {
	byDue := slices.Clone(*held)
	slices.SortFunc(byDue, func(a, b *heldMsg) int { return b.due.Compare(a.due) })
	var out []*heldMsg
	for _, p := range byDue {
		if len(out) == delayEvictMax || !p.due.After(now.Add(delayEvictHorizon)) {
			break
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return
	}
	gone := make(map[*heldMsg]bool, len(out))
	for _, p := range out {
		gone[p] = true
	}
	*held = slices.DeleteFunc(*held, func(p *heldMsg) bool { return gone[p] })
	heap.Init(held)
	for _, p := range s.requeue(ts, out, log) {
		p.fireAt = now.Add(delayRetry)
		heap.Push(held, p)
	}
}

// requeue sends ps back to the delay queue and acknowledges them; it
// returns them when the send failed (they stay held).
func (s *scheduler) requeue(ts transport.Subscription, ps []*heldMsg, log *slog.Logger) []*heldMsg {
	msgs := make([]*transport.Message, len(ps))
	for i, p := range ps {
		msgs[i] = storeCopy(p.tm)
	}
	if err := s.c.t.Send(s.ctx, s.store, msgs); err != nil {
		if s.ctx.Err() != nil {
			return nil // released by Close
		}
		log.Warn("switchboard: delayed messages not sent back to the delay queue; trying again", "error", err)
		return ps
	}
	s.ack(ts, ackIDs(ps), log)
	return nil
}

// fire forwards the held messages that are due and cycles those held for
// delayHold.
func (s *scheduler) fire(ts transport.Subscription, held *heldHeap, log *slog.Logger) {
	now := time.Now()
	var ready []*heldMsg
	for len(*held) > 0 && !(*held)[0].fireAt.After(now) {
		ready = append(ready, heap.Pop(held).(*heldMsg))
	}
	if len(ready) == 0 {
		return
	}
	slices.SortFunc(ready, func(a, b *heldMsg) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return cmpInt64(a.seq, b.seq)
	})
	var retry []*heldMsg
	var cycle []*heldMsg
	for i := 0; i < len(ready); {
		p := ready[i]
		if p.due.After(now) {
			cycle = append(cycle, p)
			i++
			continue
		}
		// A run of due messages to one destination goes in one Send, in
		// order.
		j := i + 1
		for j < len(ready) && ready[j].to == p.to && !ready[j].due.After(now) {
			j++
		}
		run := ready[i:j]
		i = j
		if err := s.forward(p.to, run); err != nil {
			if s.ctx.Err() != nil {
				return // released by Close
			}
			log.Warn("switchboard: delayed messages not forwarded; trying again", "to", p.to.String(), "error", err)
			retry = append(retry, run...)
			continue
		}
		s.ack(ts, ackIDs(run), log)
	}
	if len(cycle) > 0 {
		if s.ctx.Err() != nil {
			return
		}
		retry = append(retry, s.requeue(ts, cycle, log)...)
	}
	for _, p := range retry {
		p.fireAt = now.Add(delayRetry)
		heap.Push(held, p)
	}
}

// forward sends due messages to their destination, declaring a queue
// deleted since it was first declared.
func (s *scheduler) forward(to transport.Address, run []*heldMsg) error {
	msgs := make([]*transport.Message, len(run))
	for i, p := range run {
		msgs[i] = forwardCopy(p.tm)
	}
	err := s.c.t.Send(s.ctx, to, msgs)
	if errors.Is(err, transport.ErrNotFound) && to.Kind == transport.KindQueue {
		if err = s.c.t.Declare(s.ctx, to); err == nil {
			err = s.c.t.Send(s.ctx, to, msgs)
		}
	}
	return err
}

func (s *scheduler) ack(ts transport.Subscription, ids []any, log *slog.Logger) {
	if err := ts.Ack(s.ctx, ids); err != nil && s.ctx.Err() == nil {
		// The broker delivers them again: forwarded twice (at-least-once).
		log.Warn("switchboard: delay queue acknowledgement failed", "error", err)
	}
}

func ackIDs(ps []*heldMsg) []any {
	ids := make([]any, len(ps))
	for i, p := range ps {
		ids[i] = p.tm.AckID
	}
	return ids
}

// parsePending reads a message received from a delay queue.
func parsePending(tm *transport.Message, now time.Time) (*heldMsg, bool) {
	kind, name, ok := strings.Cut(tm.Headers[hdrDelayTo], ":")
	if !ok || name == "" {
		return nil, false
	}
	p := &heldMsg{tm: tm}
	switch kind {
	case transport.KindTopic.String():
		p.to = transport.Topic(name)
	case transport.KindQueue.String():
		p.to = transport.Queue(name)
	default:
		return nil, false
	}
	p.due = parseDue(tm.Headers[hdrDeliverAt])
	p.seq, _ = strconv.ParseInt(tm.Headers[hdrDelaySeq], 10, 64)
	p.fireAt = p.due
	if hold := now.Add(delayHold); p.fireAt.After(hold) {
		p.fireAt = hold
	}
	return p, true
}

// parseDue reads a sb-deliver-at header; zero when absent or malformed.
func parseDue(v string) time.Time {
	if v == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func formatDue(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

// forwardCopy returns the message to send to its destination: its own
// key, its headers without the delay queue's (sb-deliver-at stays, for the
// receiver's Message.DeliverAt).
func forwardCopy(tm *transport.Message) *transport.Message {
	m := storeCopy(tm)
	m.Key = tm.Headers[hdrDelayKey]
	delete(m.Headers, hdrDelayTo)
	delete(m.Headers, hdrDelaySeq)
	delete(m.Headers, hdrDelayKey)
	return m
}

// storeCopy returns a received message as a message to send.
func storeCopy(tm *transport.Message) *transport.Message {
	m := *tm
	m.Headers = maps.Clone(tm.Headers)
	m.DeliveryCount, m.AckID, m.AsFunc = 0, nil, nil
	m.DeliverAt, m.Expires = time.Time{}, time.Time{}
	return &m
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sleepCtx waits d; it reports false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

type heldHeap []*heldMsg

func (h heldHeap) Len() int { return len(h) }
func (h heldHeap) Less(i, j int) bool {
	if c := h[i].fireAt.Compare(h[j].fireAt); c != 0 {
		return c < 0
	}
	return h[i].seq < h[j].seq
}
func (h heldHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *heldHeap) Push(x any)   { *h = append(*h, x.(*heldMsg)) }
func (h *heldHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}
