package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/transport"
)

// subscription consumes one queue on a channel of its own.
type subscription struct {
	t      *Transport
	k      *keeper[*subChan]
	from   transport.Address
	queue  string
	quorum bool

	closed    chan struct{}
	closeOnce sync.Once

	// Partitioned consumer groups only (see partitions.go).
	parts        []*part
	presence     *keeper[*amqp.Channel] // consumes membersQueue
	membersQueue string
	in           chan inDelivery
	fwd          sync.WaitGroup // forwarders and the balancer
	relMu        sync.Mutex     // guards relShut and relWG.Add
	relShut      bool
	relWG        sync.WaitGroup // releases started by Nack
}

// subChan is the state of one consuming channel.
type subChan struct {
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	lostCh     chan struct{}

	mu       sync.Mutex
	dead     bool
	unacked  map[uint64]struct{}
	released map[uint64]struct{} // partitions: released, returned at channel close

	// Partitions only: active once a delivery arrived (this member is
	// the partition's single active consumer); releasing once the
	// balancer gives the partition back (releaseCh is closed then);
	// settled is closed and replaced whenever a delivery is settled
	// while releasing.
	active    bool
	releasing bool
	releaseCh chan struct{}
	settled   chan struct{}
}

func newSubChan(ch *amqp.Channel, d <-chan amqp.Delivery) *subChan {
	return &subChan{ch: ch, deliveries: d, lostCh: make(chan struct{}), unacked: make(map[uint64]struct{}), released: make(map[uint64]struct{}),
		releaseCh: make(chan struct{}), settled: make(chan struct{})}
}

// forget removes tag from the unacked deliveries, reporting whether it was
// there; called with sc.mu held.
func (sc *subChan) forget(tag uint64) bool {
	if _, ok := sc.unacked[tag]; !ok {
		return false
	}
	delete(sc.unacked, tag)
	if sc.releasing {
		close(sc.settled)
		sc.settled = make(chan struct{})
	}
	return true
}

// ackRef is a Message.AckID: the delivery tag on its channel.
type ackRef struct {
	sc  *subChan
	tag uint64
}

// Subscribe implements transport.Transport.
func (t *Transport) Subscribe(ctx context.Context, from transport.Address, group string, opts transport.SubscribeOptions) (transport.Subscription, error) {
	if t.isClosed() {
		return nil, errClosed("subscribe")
	}
	if err := validName(from); err != nil {
		return nil, err
	}
	s := &subscription{t: t, from: from, quorum: t.quorum(), closed: make(chan struct{})}
	var exchange string
	switch from.Kind {
	case transport.KindTopic:
		if group == "" {
			return nil, fmt.Errorf("rabbitmq: subscribe to %s: a consumer group is required: %w", from, transport.ErrInvalid)
		}
		exchange = t.ExchangeName(from.Name)
		s.queue = t.GroupQueueName(from.Name, group)
	case transport.KindQueue:
		// group is empty for queues; a queue's consumers always share it.
		s.queue = t.QueueName(from.Name)
	default:
		return nil, fmt.Errorf("rabbitmq: cannot subscribe to a %s address: %w", from.Kind, transport.ErrInvalid)
	}
	prefetch := opts.MaxInFlight
	if t.opts.Prefetch > 0 {
		prefetch = t.opts.Prefetch
	}
	prefetch = max(1, min(prefetch, 65535))
	setup := func(ctx context.Context, ch *amqp.Channel) (*subChan, error) {
		if err := ch.Qos(prefetch, 0, false); err != nil {
			return nil, brokerErr("set QoS", err)
		}
		if exchange != "" {
			if err := t.declareTopicExchange(ch, exchange); err != nil {
				return nil, err
			}
		}
		if _, err := ch.QueueDeclare(s.queue, true, false, false, false, t.queueArgs()); err != nil {
			return nil, mismatch(brokerErr("declare queue "+s.queue, err), s.queue)
		}
		record(t.brokerID, s.queue, 'q')
		if exchange != "" {
			if err := ch.QueueBind(s.queue, "#", exchange, false, nil); err != nil {
				return nil, brokerErr("bind queue "+s.queue, err)
			}
		}
		d, err := ch.Consume(s.queue, "", false, false, false, false, nil)
		if err != nil {
			return nil, brokerErr("consume "+s.queue, err)
		}
		return newSubChan(ch, d), nil
	}
	if from.Kind == transport.KindTopic {
		if err := s.startParts(ctx, exchange, group, prefetch); err != nil {
			return nil, err
		}
		t.mu.Lock()
		if t.isClosed() {
			t.mu.Unlock()
			s.Close()
			return nil, errClosed("subscribe")
		}
		t.subs[s] = struct{}{}
		t.mu.Unlock()
		return s, nil
	}
	s.k = newKeeper(t.m, "subscription "+s.queue, setup, func(sc *subChan, _ *amqp.Error) { sc.kill() })
	if err := s.k.start(ctx); err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.isClosed() {
		t.mu.Unlock()
		s.k.stop()
		return nil, errClosed("subscribe")
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	return s, nil
}

// cancelled closes sc's channel after its consumer ended while the channel
// stayed open, so that the keeper sets the consumer up again.
func (s *subscription) cancelled(sc *subChan) {
	if s.isClosed() || sc.ch.IsClosed() {
		return
	}
	s.t.opts.Logger.Warn("rabbitmq: the broker cancelled the consumer; declaring and consuming again", "queue", s.queue)
	_ = sc.ch.Close()
}

func (sc *subChan) kill() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.dead {
		sc.dead = true
		close(sc.lostCh)
		sc.unacked, sc.released = nil, nil
	}
}

func (s *subscription) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Receive implements transport.Subscription.
func (s *subscription) Receive(ctx context.Context, max int) ([]*transport.Message, error) {
	if max < 1 {
		max = 1
	}
	if s.parts != nil {
		return s.receiveParts(ctx, max)
	}
	for {
		if s.isClosed() {
			return nil, errClosed("receive")
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sc, err := s.k.current(ctx)
		if err != nil {
			if s.isClosed() || errors.Is(err, transport.ErrClosed) {
				return nil, errClosed("receive")
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		select {
		case d, ok := <-sc.deliveries:
			if !ok {
				// The channel closed, or the broker cancelled the consumer
				// (its queue was deleted, its node left: basic.cancel),
				// which closes the deliveries but not the channel. Close
				// the channel: its keeper reopens it, re-declaring the
				// queue and its binding and consuming again.
				s.cancelled(sc)
				select { // wait until the keeper replaces it
				case <-sc.lostCh:
				case <-ctx.Done():
				case <-s.closed:
				}
				continue
			}
			out := make([]*transport.Message, 0, min(max, 64))
			out = s.add(out, sc, &d)
		drain:
			for len(out) < max {
				select {
				case d, ok := <-sc.deliveries:
					if !ok {
						break drain
					}
					out = s.add(out, sc, &d)
				default:
					break drain
				}
			}
			if len(out) == 0 {
				continue
			}
			return out, nil
		case <-sc.lostCh:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closed:
			return nil, errClosed("receive")
		}
	}
}

func (s *subscription) add(out []*transport.Message, sc *subChan, d *amqp.Delivery) []*transport.Message {
	sc.mu.Lock()
	if sc.dead || sc.releasing {
		sc.mu.Unlock()
		return out // its channel is (about to be) gone: the broker redelivers it
	}
	sc.unacked[d.DeliveryTag] = struct{}{}
	sc.mu.Unlock()
	m := decode(d, s.quorum)
	m.AckID = &ackRef{sc: sc, tag: d.DeliveryTag}
	return append(out, m)
}

// settle acks or nacks deliveries. Deliveries of a channel that has
// closed since are skipped: the broker redelivers them.
func (s *subscription) settle(ids []any, ack bool) error {
	if s.isClosed() {
		return errClosed("ack")
	}
	if ack {
		return s.ackBatch(ids)
	}
	var errs []error
	releasing := map[*subChan]bool{}
	for _, id := range ids {
		ref, ok := id.(*ackRef)
		if !ok || ref == nil {
			errs = append(errs, fmt.Errorf("rabbitmq: AckID of type %T is not from this adapter: %w", id, transport.ErrInvalid))
			continue
		}
		sc := ref.sc
		sc.mu.Lock()
		live := sc.forget(ref.tag)
		deferred := live && !ack && s.parts != nil
		if deferred {
			// A partition's released deliveries stay with this consumer
			// until its channel closes, which returns them all at once,
			// in order, ahead of the queue: the partition is released
			// (release: once the deliveries still handed out are
			// settled, the channel closes and consumes again; the
			// broker redelivers them to the next active member, maybe
			// this one). A basic.nack would requeue each at once, and the
			// broker would hand it straight back to this consumer, out
			// of order with the others released. Kept in released, so
			// that no cumulative ack covers them.
			sc.released[ref.tag] = struct{}{}
			if !releasing[sc] {
				releasing[sc] = true
				s.goRelease(sc)
			}
		}
		sc.mu.Unlock()
		if !live || deferred {
			continue // settled already, its channel closed, or deferred
		}
		var err error
		if ack {
			err = sc.ch.Ack(ref.tag, false)
		} else {
			err = sc.ch.Nack(ref.tag, false, true)
		}
		if err != nil && !errors.Is(err, amqp.ErrClosed) && !sc.ch.IsClosed() {
			errs = append(errs, brokerErr("ack", err))
		}
	}
	return errors.Join(errs...)
}

// ackBatch acknowledges ids with as few frames as it can: on each channel,
// one cumulative basic.ack (multiple=true) covers every tag of the batch
// below the channel's lowest delivery still unacknowledged; the tags above
// it are acknowledged one by one. Deliveries are registered in tag order
// (Receive runs on one goroutine), so every tag below the cumulative one
// is either in the batch or already settled.
func (s *subscription) ackBatch(ids []any) error {
	var errs []error
	var sc *subChan
	var tags []uint64
	flush := func() {
		if sc == nil || len(tags) == 0 {
			return
		}
		sc.mu.Lock()
		live := tags[:0]
		for _, t := range tags {
			if sc.forget(t) {
				live = append(live, t)
			}
		}
		lowest := uint64(math.MaxUint64)
		for t := range sc.unacked {
			lowest = min(lowest, t)
		}
		for t := range sc.released { // released, not acked: never cover them
			lowest = min(lowest, t)
		}
		sc.mu.Unlock()
		slices.Sort(live)
		cut := 0
		for cut < len(live) && live[cut] < lowest {
			cut++
		}
		var err error
		if cut > 0 {
			err = sc.ch.Ack(live[cut-1], true)
		}
		for _, t := range live[cut:] {
			if e := sc.ch.Ack(t, false); e != nil && err == nil {
				err = e
			}
		}
		if err != nil && !errors.Is(err, amqp.ErrClosed) && !sc.ch.IsClosed() {
			errs = append(errs, brokerErr("ack", err))
		}
		tags = tags[:0]
	}
	for _, id := range ids {
		ref, ok := id.(*ackRef)
		if !ok || ref == nil {
			errs = append(errs, fmt.Errorf("rabbitmq: AckID of type %T is not from this adapter: %w", id, transport.ErrInvalid))
			continue
		}
		if ref.sc != sc {
			flush()
			sc = ref.sc
		}
		tags = append(tags, ref.tag)
	}
	flush()
	return errors.Join(errs...)
}

// Ack implements transport.Subscription.
func (s *subscription) Ack(_ context.Context, ids []any) error { return s.settle(ids, true) }

// Nack implements transport.Subscription: the deliveries are requeued.
func (s *subscription) Nack(_ context.Context, ids []any) error { return s.settle(ids, false) }

// Close implements transport.Subscription. Unsettled deliveries return to
// the queue when the channel closes.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		if s.parts != nil {
			s.relMu.Lock()
			s.relShut = true
			s.relMu.Unlock()
			s.relWG.Wait()
			s.fwd.Wait()
			for _, p := range s.parts {
				if p.k != nil {
					p.k.stop()
				}
			}
			if s.presence != nil {
				s.presence.stop()
			}
		} else {
			s.k.stop()
		}
		s.t.mu.Lock()
		delete(s.t.subs, s)
		s.t.mu.Unlock()
	})
	return nil
}
