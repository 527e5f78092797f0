package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/switchboard-go/switchboard/transport"
)

func metadataRequest(name string) *metadataAPI.Request {
	return &metadataAPI.Request{TopicNames: []string{name}, AllowAutoTopicCreation: true}
}

// subscription is one member of a Kafka consumer group. Each generation
// runs one fetcher per assigned partition; Receive hands out messages of
// every partition in offset order; acknowledgements advance, per
// partition, the offset committed for the group to the lowest offset not
// yet acknowledged.
type subscription struct {
	t     *Transport
	topic string
	group string
	cg    *kafkago.ConsumerGroup
	log   *slog.Logger

	out chan delivery // fetched, not yet handed out

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	runWG  sync.WaitGroup

	mu      sync.Mutex
	closing bool // Close started
	closed  bool // Close done
	cur     *generation
	wake    chan struct{} // commit wanted (buffered 1)
	changed chan struct{} // closed (and replaced) when a delivery is handed out or settled, if waiting > 0
	waiting int           // fetchers waiting in admit

	commitMu sync.Mutex // serialises offset commits (each carries the latest counts)

	joined     chan struct{} // closed once the first generation is joined
	joinedOnce sync.Once

	closeOnce sync.Once
}

type delivery struct {
	p     *partition
	epoch int
	count int // delivery count (see attempts.go)
	msg   kafkago.Message
}

// generation is one consumer group generation of a subscription.
type generation struct {
	gen   *kafkago.Generation
	parts map[int]*partition
}

// partition tracks one assigned partition within a generation. Guarded by
// subscription.mu.
type partition struct {
	g         *generation
	id        int
	revoked   bool    // no more deliveries (the generation is ending)
	finished  bool    // final commit done: acks are ignored
	entries   []entry // delivered, in offset order, from the oldest not acked
	next      int64   // offset after the last delivered one, or -1 if unknown
	committed int64   // last committed offset, or -1

	// Nack rewinds the partition: epoch counts rewinds (deliveries and
	// acks of an older epoch are stale), seek is the offset the fetcher
	// must restart from (-1: none), stopFetch interrupts its fetch.
	epoch     int
	seek      int64
	stopFetch context.CancelFunc

	// Delivery counts (see attempts.go): the recorded deliveries of each
	// unfinished message, by offset. queued counts the deliveries waiting
	// in subscription.out; suspect is the offset of a crash suspect
	// handed out alone (-1: none), suspectEpoch the epoch it was fetched in.
	counts       map[int64]*attemptCount
	queued       int
	suspect      int64
	suspectEpoch int
}

// unsettled reports whether p has deliveries queued or handed out and not
// settled.
func (p *partition) unsettled() bool {
	if p.queued > 0 {
		return true
	}
	for _, e := range p.entries {
		if !e.acked && !e.nacked {
			return true
		}
	}
	return false
}

type entry struct {
	offset int64
	epoch  int
	acked  bool
	nacked bool
}

// ackID is a delivery's Message.AckID.
type ackID struct {
	p      *partition
	offset int64
	epoch  int
}

// position is the offset to commit: the oldest delivered offset not yet
// acknowledged, else the offset after the last delivered one.
func (p *partition) position() int64 {
	if len(p.entries) > 0 {
		return p.entries[0].offset
	}
	return p.next
}

func (p *partition) find(off int64) int {
	i := sort.Search(len(p.entries), func(i int) bool { return p.entries[i].offset >= off })
	if i < len(p.entries) && p.entries[i].offset == off {
		return i
	}
	return -1
}

func (p *partition) compact() {
	n := 0
	for n < len(p.entries) && p.entries[n].acked {
		n++
	}
	if n > 0 {
		p.entries = append(p.entries[:0], p.entries[n:]...)
	}
}

func (t *Transport) newSubscription(topic, gid string, opts transport.SubscribeOptions) (*subscription, error) {
	o := &t.opts
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                     gid,
		Brokers:                t.brokers,
		Dialer:                 t.dialer,
		Topics:                 []string{topic},
		HeartbeatInterval:      o.HeartbeatInterval,
		SessionTimeout:         o.SessionTimeout,
		RebalanceTimeout:       o.RebalanceTimeout,
		JoinGroupBackoff:       o.JoinBackoff,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		StartOffset:            kafkago.FirstOffset,
		Timeout:                5 * time.Second,
		Logger:                 kafkaLogger{t.log, slog.LevelDebug},
		ErrorLogger:            kafkaLogger{t.log, slog.LevelDebug},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: kafka: consumer group %s: %w", transport.ErrInvalid, gid, err)
	}
	n := opts.MaxInFlight
	if n < 16 {
		n = 16
	}
	if n > 1024 {
		n = 1024
	}
	s := &subscription{
		t:       t,
		topic:   topic,
		group:   gid,
		cg:      cg,
		log:     t.log.With("group", gid),
		out:     make(chan delivery, n),
		wake:    make(chan struct{}, 1),
		changed: make(chan struct{}),
		joined:  make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.runWG.Add(1)
	go s.run()
	return s, nil
}

// awaitJoin waits until the subscription has joined its group (its first
// generation began), ctx ends or limit passes, whichever is first, so that
// a queue's consumer is a member the broker reports (DescribeGroups) once
// Subscribe returns (see Transport.Consumers). It reports whether it
// joined; not joining in time is not an error: the group goes on joining.
func (s *subscription) awaitJoin(ctx context.Context, limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-s.joined:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

// run follows the group's generations.
func (s *subscription) run() {
	defer s.runWG.Done()
	for {
		gen, err := s.cg.Next(s.ctx)
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, kafkago.ErrGroupClosed) {
				return
			}
			s.log.Debug("kafka: group generation failed; retrying", "err", err)
			continue
		}
		g := &generation{gen: gen, parts: make(map[int]*partition)}
		s.mu.Lock()
		s.cur = g
		for _, pa := range gen.Assignments[s.topic] {
			p := &partition{g: g, id: pa.ID, next: -1, committed: -1, seek: -1, suspect: -1, counts: map[int64]*attemptCount{}}
			if pa.Offset >= 0 {
				p.next, p.committed = pa.Offset, pa.Offset
			}
			g.parts[pa.ID] = p
		}
		s.mu.Unlock()
		s.loadAttempts(s.ctx, g)
		s.log.Debug("kafka: joined generation", "generation", gen.ID, "partitions", len(g.parts))
		s.joinedOnce.Do(func() { close(s.joined) })
		for _, pa := range gen.Assignments[s.topic] {
			p, start := g.parts[pa.ID], pa.Offset
			gen.Start(func(ctx context.Context) { s.fetch(ctx, p, start) })
		}
		gen.Start(func(ctx context.Context) { s.commitLoop(ctx, g) })
	}
}

// fetch reads one partition from start and queues its messages in order.
func (s *subscription) fetch(ctx context.Context, p *partition, start int64) {
	o := &s.t.opts
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        s.t.brokers,
		Topic:          s.topic,
		Partition:      p.id,
		Dialer:         s.t.dialer,
		MinBytes:       1,
		MaxBytes:       4 << 20,
		MaxWait:        o.MaxWait,
		QueueCapacity:  cap(s.out),
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		MaxAttempts:    3,
		// No lag polling: nothing reads Reader.Stats().Lag, and it costs a
		// goroutine and a ListOffsets round trip a minute per reader.
		ReadLagInterval: -1,
		Logger:          kafkaLogger{s.log, slog.LevelDebug},
		ErrorLogger:     kafkaLogger{s.log, slog.LevelDebug},
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		s.log.Warn("kafka: cannot set the start offset", "partition", p.id, "err", err)
		return
	}
	for {
		s.mu.Lock()
		if p.seek >= 0 {
			if err := r.SetOffset(p.seek); err != nil {
				s.mu.Unlock()
				return
			}
			p.seek = -1
		}
		epoch := p.epoch
		fctx, stop := context.WithCancel(ctx)
		p.stopFetch = stop
		s.mu.Unlock()
		m, err := r.FetchMessage(fctx)
		stop()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if fctx.Err() == nil {
				s.log.Debug("kafka: fetch failed; the reader retries", "partition", p.id, "err", err)
			}
			continue // a Nack interrupted the fetch to rewind, or retry
		}
		if !s.admit(ctx, p, epoch, m.Offset) {
			if ctx.Err() != nil {
				return
			}
			continue // rewound meanwhile: the seek applies
		}
		select {
		case s.out <- delivery{p: p, epoch: epoch, msg: m}:
		case <-ctx.Done():
			return
		}
	}
}

// admit waits until the message at offset may be queued for Receive (see
// attempts.go, crash suspects) and counts it as queued. It returns false
// when ctx ends or the partition was rewound (epoch moved on).
func (s *subscription) admit(ctx context.Context, p *partition, epoch int, offset int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if ctx.Err() != nil || p.epoch != epoch {
			return false
		}
		if p.suspect >= 0 && (p.suspectEpoch != p.epoch || p.counts[p.suspect] == nil) {
			p.suspect = -1 // settled, or released by a rewind
		}
		c := p.counts[offset]
		isSuspect := c != nil && !c.mine
		if p.suspect < 0 && (!isSuspect || !p.unsettled()) {
			if isSuspect {
				p.suspect, p.suspectEpoch = offset, epoch
			}
			p.queued++
			return true
		}
		ch := s.changed
		s.waiting++
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		s.mu.Lock()
		s.waiting--
	}
}

// notifyLocked wakes the fetchers waiting in admit. s.mu is held.
func (s *subscription) notifyLocked() {
	if s.waiting == 0 {
		return
	}
	close(s.changed)
	s.changed = make(chan struct{})
}

// commitLoop commits acknowledged positions while the generation lives,
// then, when it ends, stops deliveries, lets acknowledgements of delivered
// messages arrive for up to DrainTimeout (unless the subscription is
// closing), and commits a last time.
func (s *subscription) commitLoop(ctx context.Context, g *generation) {
	for {
		select {
		case <-s.wake:
			s.commit(g, false)
			continue
		case <-ctx.Done():
		}
		break
	}
	s.mu.Lock()
	for _, p := range g.parts {
		p.revoked = true
	}
	s.mu.Unlock()
	deadline := time.Now().Add(s.t.opts.DrainTimeout)
	for time.Now().Before(deadline) && s.ctx.Err() == nil && s.pending(g) {
		select {
		case <-s.wake:
			s.commit(g, false)
		case <-s.ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.commit(g, true)
}

// pending reports whether g has delivered messages not yet acknowledged
// (nacked ones do not count: they will not be acknowledged).
func (s *subscription) pending(g *generation) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range g.parts {
		for _, e := range p.entries {
			if !e.acked && !e.nacked {
				return true
			}
		}
	}
	return false
}

// commit commits the positions of g's partitions that moved.
func (s *subscription) commit(g *generation, final bool) {
	s.commitMu.Lock()
	s.mu.Lock()
	offs := map[int]int64{}
	var commits []kafkago.OffsetCommit
	for id, p := range g.parts {
		if pos := p.position(); pos >= 0 && pos > p.committed {
			offs[id] = pos
			// The counts of the messages still unfinished stay recorded.
			commits = append(commits, kafkago.OffsetCommit{Partition: id, Offset: pos, Metadata: formatAttempts(p.counts, pos)})
		}
	}
	s.mu.Unlock()
	defer s.commitMu.Unlock()
	if len(offs) > 0 {
		err := s.commitWithMetadata(context.Background(), g, commits, 0)
		if err != nil {
			// Not fatal: the group resumes from the last commit and
			// redelivers (at least once).
			s.log.Debug("kafka: commit failed", "err", err, "final", final)
		} else {
			s.mu.Lock()
			for id, off := range offs {
				if p := g.parts[id]; off > p.committed {
					p.committed = off
				}
			}
			s.mu.Unlock()
		}
	}
	if final {
		s.mu.Lock()
		for _, p := range g.parts {
			p.finished = true
		}
		if s.cur == g {
			s.cur = nil
		}
		s.mu.Unlock()
	}
}

func (s *subscription) requestCommit() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Receive returns messages in partition offset order.
func (s *subscription) Receive(ctx context.Context, max int) ([]*transport.Message, error) {
	if max < 1 {
		max = 1
	}
	var batch []delivery
	for len(batch) == 0 {
		if s.ctx.Err() != nil {
			return nil, fmt.Errorf("%w: kafka subscription", transport.ErrClosed)
		}
		select {
		case d := <-s.out:
			if s.deliver(d) {
				batch = append(batch, d)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.ctx.Done():
			return nil, fmt.Errorf("%w: kafka subscription", transport.ErrClosed)
		}
	}
	for len(batch) < max {
		select {
		case d := <-s.out:
			if s.deliver(d) {
				batch = append(batch, d)
			}
			continue
		default:
		}
		break
	}
	// Count the batch durably before handing it out (attempts.go).
	s.countBatch(batch)
	out := make([]*transport.Message, len(batch))
	for i := range batch {
		d := &batch[i]
		m := decode(&d.msg)
		m.AckID = ackID{p: d.p, offset: d.msg.Offset, epoch: d.epoch}
		m.DeliveryCount = d.count
		out[i] = m
	}
	return out, nil
}

// deliver records a delivery, or drops it (false) if its partition was
// revoked or rewound.
func (s *subscription) deliver(d delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := d.p
	p.queued--
	s.notifyLocked()
	if p.revoked || s.closing || d.epoch != p.epoch {
		return false
	}
	off := d.msg.Offset
	if p.next >= 0 && off < p.next {
		// Already delivered in this generation (cannot happen with one
		// fetcher per partition, but never go backwards).
		return false
	}
	p.entries = append(p.entries, entry{offset: off, epoch: p.epoch})
	p.next = off + 1
	return true
}

// Ack marks deliveries done; commits follow asynchronously (and at Close).
func (s *subscription) Ack(ctx context.Context, ids []any) error {
	return s.settle(ids, false)
}

// Nack releases deliveries. Kafka cannot release single messages, so the
// subscription rewinds the partition to the oldest nacked message and
// delivers it (and what follows it on the partition) again; the group's
// committed offset never passes it, so if this subscription closes first,
// the group's next consumer receives it.
func (s *subscription) Nack(ctx context.Context, ids []any) error {
	return s.settle(ids, true)
}

func (s *subscription) settle(ids []any, nack bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("%w: kafka subscription", transport.ErrClosed)
	}
	rewind := map[*partition]int64{}
	for _, id := range ids {
		a, ok := id.(ackID)
		if !ok {
			s.mu.Unlock()
			return fmt.Errorf("%w: kafka: foreign ack ID %T", transport.ErrInvalid, id)
		}
		p := a.p
		if p.finished {
			continue // generation over: the message will be redelivered
		}
		i := p.find(a.offset)
		if i < 0 || p.entries[i].epoch != a.epoch {
			continue // stale: delivered before a rewind, delivered again since
		}
		switch {
		case !nack:
			if !p.entries[i].nacked {
				p.entries[i].acked = true
				delete(p.counts, a.offset) // finished: its count goes
			}
		case p.revoked || s.closing:
			p.entries[i].nacked = true // never commit past it
		default:
			if o, ok := rewind[p]; !ok || a.offset < o {
				rewind[p] = a.offset
			}
		}
		p.compact()
	}
	s.notifyLocked()
	for p, o := range rewind {
		// Forget the deliveries from o on; the fetcher restarts at o.
		i := sort.Search(len(p.entries), func(i int) bool { return p.entries[i].offset >= o })
		p.entries = p.entries[:i]
		p.next = o
		p.epoch++
		p.seek = o
		if p.stopFetch != nil {
			p.stopFetch()
		}
	}
	s.mu.Unlock()
	if !nack {
		s.requestCommit()
	}
	return nil
}

// Close commits what was acknowledged, leaves the group and stops. The
// group's next consumer receives every message not acknowledged.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		s.cancel()
		_ = s.cg.Close() // ends the generation (final commit) and leaves the group
		s.runWG.Wait()
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.t.mu.Lock()
		delete(s.t.subs, s)
		s.t.mu.Unlock()
	})
	return nil
}
