package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.Admin = (*Transport)(nil)

// adminCall runs fn on a channel of its own, opened for the call and
// closed after it, so that a 404 (which closes the channel) disturbs no
// other operation. It is bounded by ctx.
func (t *Transport) adminCall(ctx context.Context, op string, fn func(ch *amqp.Channel) error) error {
	if t.isClosed() {
		return errClosed(op)
	}
	conn, _, err := t.m.get(ctx, t.closed)
	if err != nil {
		if errors.Is(err, transport.ErrClosed) {
			return errClosed(op)
		}
		return err
	}
	done := make(chan error, 1)
	go func() {
		ch, err := conn.Channel()
		if err != nil {
			done <- err
			return
		}
		err = fn(ch)
		_ = ch.Close()
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrUnavailable, ctx.Err())
	case <-t.closed:
		return errClosed(op)
	}
	if err != nil {
		return brokerErr(op, err)
	}
	return nil
}

// adminQueue returns the AMQP queue of a queue address; a topic address
// names a consumer group, whose queues adminGroup returns.
func (t *Transport) adminQueue(a transport.Address, group string) (string, error) {
	if err := validName(a); err != nil {
		return "", err
	}
	switch a.Kind {
	case transport.KindTopic:
		if group == "" {
			return "", fmt.Errorf("rabbitmq: a consumer group of %s needs a group name: %w", a, transport.ErrInvalid)
		}
		return "", nil
	case transport.KindQueue:
		if group != "" {
			return "", fmt.Errorf("rabbitmq: queue %q takes no group: %w", a.Name, transport.ErrInvalid)
		}
		return t.QueueName(a.Name), nil
	}
	return "", fmt.Errorf("rabbitmq: no admin operations on a %s address: %w", a.Kind, transport.ErrInvalid)
}

// groupQueues names the queues of a partitioned consumer group (see the
// package doc, Topology): the queues that hold its messages (the
// GroupPartitions partition queues, then the 0.1 group queue
// GroupQueueName, which an upgraded deployment may still hold) and the
// members queue, whose consumers are the group's members.
func (t *Transport) groupQueues(topic, group string) (holding []string, members string) {
	holding = append(t.PartitionQueueNames(topic, group), t.GroupQueueName(topic, group))
	return holding, t.MembersQueueName(topic, group)
}

// inspect declares the queue passively: it fails with a 404 (ErrNotFound)
// when the queue is missing, and creates nothing.
func inspect(ch *amqp.Channel, queue string) (amqp.Queue, error) {
	return ch.QueueDeclarePassive(queue, true, false, false, false, nil)
}

// groupQueue is one queue of a group found by inspectGroup.
type groupQueue struct {
	name string
	st   amqp.Queue
}

// inspectGroup declares every queue of a group passively, each on a
// channel of its own (a 404 closes the channel), and returns the holding
// queues that exist and the members queue's state (found false when it
// is missing). It fails with ErrNotFound when none of the group's queues
// exists.
func (t *Transport) inspectGroup(ctx context.Context, op, topic, group string) (found []groupQueue, members amqp.Queue, membersFound bool, err error) {
	holding, mq := t.groupQueues(topic, group)
	for _, q := range append(holding, mq) {
		var st amqp.Queue
		err := t.adminCall(ctx, op+" "+q, func(ch *amqp.Channel) error {
			var err error
			st, err = inspect(ch, q)
			return err
		})
		switch {
		case errors.Is(err, transport.ErrNotFound):
			continue
		case err != nil:
			return nil, amqp.Queue{}, false, err
		case q == mq:
			members, membersFound = st, true
		default:
			found = append(found, groupQueue{name: q, st: st})
		}
	}
	if len(found) == 0 && !membersFound {
		return nil, amqp.Queue{}, false, fmt.Errorf("rabbitmq: %s: consumer group %q of topic %q has no queue (neither its partitions p0..p%d nor its members queue): %w", op, group, topic, GroupPartitions-1, transport.ErrNotFound)
	}
	return found, members, membersFound, nil
}

// deleteQueue deletes an existing queue. queue.delete of a missing queue
// succeeds on RabbitMQ, so a passive declare checks it exists first.
func (t *Transport) deleteQueue(ctx context.Context, queue string) error {
	return t.adminCall(ctx, "delete queue "+queue, func(ch *amqp.Channel) error {
		if _, err := inspect(ch, queue); err != nil {
			return err
		}
		_, err := ch.QueueDelete(queue, false, false, false)
		return err
	})
}

// DeleteGroup implements transport.Admin: it deletes every queue of the
// group that exists (its partition queues, its members queue and a 0.1
// group queue left by an upgrade), their bindings with them. It fails
// with ErrNotFound when none exists.
func (t *Transport) DeleteGroup(ctx context.Context, topic, group string) error {
	if _, err := t.adminQueue(transport.Topic(topic), group); err != nil {
		return err
	}
	found, _, membersFound, err := t.inspectGroup(ctx, "delete group", topic, group)
	if err != nil {
		return err
	}
	var names []string
	for _, q := range found {
		names = append(names, q.name)
	}
	if membersFound {
		names = append(names, t.MembersQueueName(topic, group))
	}
	for _, q := range names {
		err := t.adminCall(ctx, "delete queue "+q, func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(q, false, false, false)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// DeleteQueue implements transport.Admin.
func (t *Transport) DeleteQueue(ctx context.Context, name string) error {
	q, err := t.adminQueue(transport.Queue(name), "")
	if err != nil {
		return err
	}
	return t.deleteQueue(ctx, q)
}

// Purge implements transport.Admin with queue.purge (of every partition
// queue of a group), which removes the ready messages; those delivered to
// a consumer and not yet acknowledged are kept.
func (t *Transport) Purge(ctx context.Context, a transport.Address, group string) error {
	q, err := t.adminQueue(a, group)
	if err != nil {
		return err
	}
	names := []string{q}
	if a.Kind == transport.KindTopic {
		found, _, _, err := t.inspectGroup(ctx, "purge group", a.Name, group)
		if err != nil {
			return err
		}
		names = names[:0]
		for _, g := range found {
			names = append(names, g.name)
		}
	}
	for _, q := range names {
		err := t.adminCall(ctx, "purge queue "+q, func(ch *amqp.Channel) error {
			if _, err := inspect(ch, q); err != nil {
				return err
			}
			_, err := ch.QueuePurge(q, false)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Inspect implements transport.Admin with passive queue.declares. For a
// queue: its ready messages and consumers. For a consumer group: the
// ready messages of all its partition queues (and of a 0.1 group queue
// left by an upgrade), and its members (the consumers of its members
// queue; where that queue is missing, the most consumers of any of its
// queues).
func (t *Transport) Inspect(ctx context.Context, a transport.Address, group string) (transport.QueueInfo, error) {
	q, err := t.adminQueue(a, group)
	if err != nil {
		return transport.QueueInfo{}, err
	}
	var info transport.QueueInfo
	if a.Kind == transport.KindTopic {
		found, members, membersFound, err := t.inspectGroup(ctx, "inspect group", a.Name, group)
		if err != nil {
			return info, err
		}
		for _, g := range found {
			info.Messages += g.st.Messages
			info.Consumers = max(info.Consumers, g.st.Consumers)
		}
		if membersFound {
			info.Consumers = members.Consumers
		}
		return info, nil
	}
	err = t.adminCall(ctx, "inspect queue "+q, func(ch *amqp.Channel) error {
		st, err := inspect(ch, q)
		info = transport.QueueInfo{Messages: st.Messages, Consumers: st.Consumers}
		return err
	})
	return info, err
}

// Peek implements transport.Admin: RabbitMQ cannot read a message without
// delivering it (basic.get), and a quorum queue counts every delivery
// returned to it in x-delivery-count, so Peek checks the queue exists and
// fails with errors.ErrUnsupported.
func (t *Transport) Peek(ctx context.Context, a transport.Address, group string, _ int) ([]*transport.Message, error) {
	if _, err := t.Inspect(ctx, a, group); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("rabbitmq: peek: reading a message raises its delivery count (x-delivery-count of quorum queues): %w", errors.ErrUnsupported)
}

var _ transport.ConsumerCounter = (*Transport)(nil)

// Consumers implements transport.ConsumerCounter with a passive
// queue.declare: basic.consume is done before Subscribe returns, and the
// broker forgets a consumer as soon as its channel or connection closes.
func (t *Transport) Consumers(ctx context.Context, queue string) (int, error) {
	info, err := t.Inspect(ctx, transport.Queue(queue), "")
	return info.Consumers, err
}

// setExpiration sets the per-message TTL of a message that expires (a
// request): the time left, in milliseconds, at least 1. Quorum queues
// (RabbitMQ 3.10 and later) and classic queues drop the message once it
// expired, unconsumed.
func setExpiration(pub *amqp.Publishing, expires time.Time) {
	if expires.IsZero() {
		return
	}
	ms := max(1, time.Until(expires).Milliseconds())
	pub.Expiration = strconv.FormatInt(ms, 10)
}
