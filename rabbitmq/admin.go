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
		return fmt.Errorf("%w: rabbitmq: %s: %w", transport.ErrUnavailable, op, ctx.Err())
	case <-t.closed:
		return errClosed(op)
	}
	if err != nil {
		return brokerErr(op, err)
	}
	return nil
}

// adminQueue returns the AMQP queue of a group or queue address.
func (t *Transport) adminQueue(a transport.Address, group string) (string, error) {
	if err := validName(a); err != nil {
		return "", err
	}
	switch a.Kind {
	case transport.KindTopic:
		if group == "" {
			return "", fmt.Errorf("%w: rabbitmq: a consumer group of %s needs a group name", transport.ErrInvalid, a)
		}
		return t.GroupQueueName(a.Name, group), nil
	case transport.KindQueue:
		if group != "" {
			return "", fmt.Errorf("%w: rabbitmq: queue %q takes no group", transport.ErrInvalid, a.Name)
		}
		return t.QueueName(a.Name), nil
	}
	return "", fmt.Errorf("%w: rabbitmq: no admin operations on a %s address", transport.ErrInvalid, a.Kind)
}

// inspect declares the queue passively: it fails with a 404 (ErrNotFound)
// when the queue is missing, and creates nothing.
func inspect(ch *amqp.Channel, queue string) (amqp.Queue, error) {
	return ch.QueueDeclarePassive(queue, true, false, false, false, nil)
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

// DeleteGroup implements transport.Admin: it deletes the group's queue
// (its binding goes with it).
func (t *Transport) DeleteGroup(ctx context.Context, topic, group string) error {
	q, err := t.adminQueue(transport.Topic(topic), group)
	if err != nil {
		return err
	}
	return t.deleteQueue(ctx, q)
}

// DeleteQueue implements transport.Admin.
func (t *Transport) DeleteQueue(ctx context.Context, name string) error {
	q, err := t.adminQueue(transport.Queue(name), "")
	if err != nil {
		return err
	}
	return t.deleteQueue(ctx, q)
}

// Purge implements transport.Admin with queue.purge, which removes the
// ready messages; those delivered to a consumer and not yet acknowledged
// are kept.
func (t *Transport) Purge(ctx context.Context, a transport.Address, group string) error {
	q, err := t.adminQueue(a, group)
	if err != nil {
		return err
	}
	return t.adminCall(ctx, "purge queue "+q, func(ch *amqp.Channel) error {
		if _, err := inspect(ch, q); err != nil {
			return err
		}
		_, err := ch.QueuePurge(q, false)
		return err
	})
}

// Inspect implements transport.Admin with a passive queue.declare: the
// ready messages and the consumers.
func (t *Transport) Inspect(ctx context.Context, a transport.Address, group string) (transport.QueueInfo, error) {
	q, err := t.adminQueue(a, group)
	if err != nil {
		return transport.QueueInfo{}, err
	}
	var info transport.QueueInfo
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
