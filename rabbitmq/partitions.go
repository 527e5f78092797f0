package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/transport"
)

// Consumer groups are partitioned (SEMANTICS.md, "Membership"): a topic's
// messages are routed by key to one of GroupPartitions partitions, and a
// group has one queue per partition, declared with
// x-single-active-consumer. Every member of the group consumes every
// partition queue; the broker delivers each partition to one member at a
// time (the active consumer) and moves it to a waiting member only when
// the active one leaves (its channel closes, which returns what it had not
// acknowledged to the head of the queue). So one key's messages are
// handled one at a time and in order across all members.
//
// To spread partitions across members, each member balances: it counts
// the group's members (the consumers of partition 0) and, when it is the
// active consumer of more than its share (ceil(GroupPartitions/members)),
// it releases the extra partitions: it stops taking their deliveries,
// waits until the ones it handed out are settled, closes their channels
// (the broker activates a waiting member, which receives the released
// messages first, in order) and subscribes again as a waiting consumer.

// GroupPartitions is the number of partitions of every consumer group,
// fixed so that every publisher and consumer agree on it: a group's
// throughput grows with its members up to this many active members.
const GroupPartitions = 4

// balanceEvery is how often a member of a partitioned group checks its
// share of the partitions.
const balanceEvery = 300 * time.Millisecond

// partitionOf returns the partition of a message: a hash of its key, or of
// its ID when it has no key.
func partitionOf(key, id string) int {
	h := fnv.New32a()
	if key != "" {
		h.Write([]byte(key))
	} else {
		h.Write([]byte(id))
	}
	return int(h.Sum32() % GroupPartitions)
}

// topicRoutingKey returns the routing key of a message published to a
// topic: "<partition>.<key>" (the key is dropped when the whole would not
// fit in a routing key).
func topicRoutingKey(key, id string) string {
	p := strconv.Itoa(partitionOf(key, id))
	if key == "" || len(p)+1+len(key) > maxShortStr {
		return p
	}
	return p + "." + key
}

// MembersQueueName returns the name of the queue whose consumers are the
// members of a partitioned group: every member consumes it (nothing is
// ever published to it), so its consumer count is the group's size.
func (t *Transport) MembersQueueName(topic, group string) string {
	return fit(t.opts.Prefix + topic + "~" + group + "~members")
}

// PartitionQueueNames returns the queue names of a topic's consumer
// group, one per partition: GroupQueueName(topic, group) + "~p" + n.
func (t *Transport) PartitionQueueNames(topic, group string) []string {
	out := make([]string, GroupPartitions)
	for i := range out {
		out[i] = fit(t.opts.Prefix + topic + "~" + group + "~p" + strconv.Itoa(i))
	}
	return out
}

func (t *Transport) partitionQueueArgs() amqp.Table {
	a := t.queueArgs() // queue type, quorum_initial_group_size
	a["x-single-active-consumer"] = true
	return a
}

// part is one partition of a partitioned subscription.
type part struct {
	s     *subscription
	n     int
	queue string
	k     *keeper[*subChan]
}

// forward moves the partition's deliveries to the subscription's Receive,
// one at a time, until the subscription closes.
func (p *part) forward() {
	defer p.s.fwd.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-p.s.closed
		cancel()
	}()
	for {
		sc, err := p.k.current(ctx)
		if err != nil {
			return
		}
		select {
		case d, ok := <-sc.deliveries:
			if !ok {
				p.s.cancelled(sc)
				select {
				case <-sc.lostCh:
				case <-p.s.closed:
					return
				}
				continue
			}
			sc.mu.Lock()
			sc.active = true
			sc.mu.Unlock()
			select {
			case p.s.in <- inDelivery{sc: sc, d: d}:
			case <-sc.releaseCh: // not handed out: returned when the channel closes
			case <-sc.lostCh:
			case <-p.s.closed:
				return
			}
		case <-sc.lostCh:
		case <-p.s.closed:
			return
		}
	}
}

// inDelivery is a delivery on its way from a partition to Receive.
type inDelivery struct {
	sc *subChan
	d  amqp.Delivery
}

// balance releases the partitions this member holds beyond its share,
// until the subscription closes.
func (s *subscription) balance() {
	defer s.fwd.Done()
	jitter := time.Duration(rand.Int64N(int64(balanceEvery / 3)))
	tick := time.NewTicker(balanceEvery + jitter)
	defer tick.Stop()
	var releasing sync.WaitGroup
	defer releasing.Wait()
	for {
		select {
		case <-tick.C:
		case <-s.closed:
			return
		}
		var active []*subChan
		for _, p := range s.parts {
			sc, ok := p.k.peek()
			if !ok {
				continue
			}
			sc.mu.Lock()
			if sc.active && !sc.releasing && !sc.dead {
				active = append(active, sc)
			}
			sc.mu.Unlock()
		}
		if len(active) <= 1 {
			continue
		}
		members := s.members()
		if members <= 1 {
			continue
		}
		share := (GroupPartitions + members - 1) / members
		for i := 0; i < len(active)-share; i++ {
			// Release the partition with the fewest deliveries handed out.
			best := -1
			for j, sc := range active {
				if sc == nil {
					continue
				}
				if best < 0 || sc.handed() < active[best].handed() {
					best = j
				}
			}
			sc := active[best]
			active[best] = nil
			releasing.Add(1)
			go func() {
				defer releasing.Done()
				s.release(sc)
			}()
		}
	}
}

// members returns how many members the group has: the consumers of its
// members queue (a single-active-consumer queue reports only its active
// consumer). It returns 0 when it cannot tell.
func (s *subscription) members() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	var n int
	err := s.t.rpc(ctx, "inspect "+s.membersQueue, func(ch *amqp.Channel) error {
		q, err := ch.QueueDeclarePassive(s.membersQueue, true, false, false, false, nil)
		n = q.Consumers
		return err
	})
	if err != nil {
		return 0
	}
	return n
}

// release gives a partition back to the group: no more of its deliveries
// are handed out; once those handed out are settled, its channel closes
// (the broker returns the rest and activates another member) and its
// keeper subscribes again, as a waiting consumer.
func (s *subscription) release(sc *subChan) {
	sc.mu.Lock()
	if sc.releasing || sc.dead {
		sc.mu.Unlock()
		return
	}
	sc.releasing = true
	close(sc.releaseCh)
	sc.mu.Unlock()
	for {
		sc.mu.Lock()
		n, dead := len(sc.unacked), sc.dead
		settled := sc.settled
		sc.mu.Unlock()
		if n == 0 || dead {
			break
		}
		select {
		case <-settled:
		case <-sc.lostCh:
		case <-s.closed:
			return
		}
	}
	_ = sc.ch.Close()
}

// goRelease releases sc's partition in the background (see release);
// called with sc.mu held, so release must not run before it returns.
func (s *subscription) goRelease(sc *subChan) {
	s.relMu.Lock()
	defer s.relMu.Unlock()
	if s.relShut {
		return // closing: the channel closes anyway
	}
	s.relWG.Add(1)
	go func() {
		defer s.relWG.Done()
		s.release(sc)
	}()
}

// handed returns how many of sc's deliveries are handed out, unsettled.
func (sc *subChan) handed() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.unacked)
}

// startParts sets up one keeper per partition of a consumer group, then
// the forwarders and the balancer.
func (s *subscription) startParts(ctx context.Context, exchange, group string, prefetch int) error {
	t := s.t
	s.in = make(chan inDelivery)
	names := t.PartitionQueueNames(s.from.Name, group)
	for i, q := range names {
		p := &part{s: s, n: i, queue: q}
		binding := strconv.Itoa(i) + ".#"
		setup := func(ctx context.Context, ch *amqp.Channel) (*subChan, error) {
			if err := ch.Qos(prefetch, 0, false); err != nil {
				return nil, brokerErr("set QoS", err)
			}
			if err := t.declareTopicExchange(ch, exchange); err != nil {
				return nil, err
			}
			if _, err := ch.QueueDeclare(q, true, false, false, false, t.partitionQueueArgs()); err != nil {
				return nil, mismatch(brokerErr("declare queue "+q, err), q)
			}
			record(t.brokerID, q, 'q')
			if err := ch.QueueBind(q, binding, exchange, false, nil); err != nil {
				return nil, brokerErr("bind queue "+q, err)
			}
			if i == 0 {
				// Messages from producers that are not Switchboard
				// carry routing keys no partition binds: the topic
				// exchange's alternate exchange hands them to
				// partition 0 of every group.
				if err := ch.QueueBind(q, "", foreignExchangeName(exchange), false, nil); err != nil {
					return nil, brokerErr("bind queue "+q, err)
				}
			}
			d, err := ch.Consume(q, "", false, false, false, false, nil)
			if err != nil {
				return nil, brokerErr("consume "+q, err)
			}
			return newSubChan(ch, d), nil
		}
		p.k = newKeeper(t.m, "subscription "+q, setup, func(sc *subChan, _ *amqp.Error) { sc.kill() })
		if err := p.k.start(ctx); err != nil {
			for _, q := range s.parts {
				q.k.stop()
			}
			return err
		}
		s.parts = append(s.parts, p)
	}
	s.queue = names[0]
	s.membersQueue = t.MembersQueueName(s.from.Name, group)
	mq := s.membersQueue
	s.presence = newKeeper(t.m, "members "+mq, func(ctx context.Context, ch *amqp.Channel) (*amqp.Channel, error) {
		if _, err := ch.QueueDeclare(mq, true, false, false, false, amqp.Table{"x-queue-type": QueueTypeClassic}); err != nil {
			return nil, mismatch(brokerErr("declare queue "+mq, err), mq)
		}
		record(t.brokerID, mq, 'q')
		if _, err := ch.Consume(mq, "", true, false, false, false, nil); err != nil {
			return nil, brokerErr("consume "+mq, err)
		}
		return ch, nil
	}, nil)
	if err := s.presence.start(ctx); err != nil {
		for _, q := range s.parts {
			q.k.stop()
		}
		return err
	}
	for _, p := range s.parts {
		s.fwd.Add(1)
		go p.forward()
	}
	s.fwd.Add(1)
	go s.balance()
	return nil
}

// receiveParts is Receive for a partitioned group.
func (s *subscription) receiveParts(ctx context.Context, max int) ([]*transport.Message, error) {
	for {
		if s.isClosed() {
			return nil, errClosed("receive")
		}
		select {
		case in := <-s.in:
			out := make([]*transport.Message, 0, min(max, 64))
			out = s.add(out, in.sc, &in.d)
		drain:
			for len(out) < max {
				select {
				case in := <-s.in:
					out = s.add(out, in.sc, &in.d)
				default:
					break drain
				}
			}
			if len(out) == 0 {
				continue
			}
			return out, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.closed:
			return nil, errClosed("receive")
		}
	}
}

// foreignExchangeName returns the name of the alternate exchange of a
// topic's exchange: a fanout exchange that receives the messages no
// partition binding matched, which are those of producers that are not
// Switchboard (their routing keys are not "<partition>.<key>"), and hands
// them to partition 0 of every consumer group.
func foreignExchangeName(exchange string) string { return fit(exchange + "~foreign") }

// declareTopicExchange declares a topic's exchange, with its alternate
// exchange (see foreignExchangeName), on ch. A topic exchange declared
// without the alternate exchange (by Switchboard 0.1) fails with
// ErrInvalid: delete it to let it be declared again.
func (t *Transport) declareTopicExchange(ch *amqp.Channel, exchange string) error {
	ae := foreignExchangeName(exchange)
	if err := ch.ExchangeDeclare(ae, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return brokerErr("declare exchange "+ae, err)
	}
	record(t.brokerID, ae, 'x')
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, amqp.Table{"alternate-exchange": ae}); err != nil {
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
			return fmt.Errorf("rabbitmq: exchange %q exists without its alternate exchange (declared by Switchboard 0.1?); delete it: %w: %w", exchange, transport.ErrInvalid, aerr)
		}
		return brokerErr("declare exchange "+exchange, err)
	}
	record(t.brokerID, exchange, 'x')
	return nil
}
