package inmem

import (
	"context"
	"fmt"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.Admin = (*conn)(nil)

// find returns the queue of a group (a topic address and a group) or of a
// queue (a queue address, no group), or an error matching ErrNotFound.
// Called with b.mu held.
func (b *Broker) find(a transport.Address, group string) (*queue, error) {
	switch a.Kind {
	case transport.KindTopic:
		if group == "" {
			return nil, fmt.Errorf("inmem: %w: a consumer group of %s needs a group name", transport.ErrInvalid, a)
		}
		if q := b.topics[a.Name][group]; q != nil {
			return q, nil
		}
		return nil, fmt.Errorf("inmem: group %q of topic %q: %w", group, a.Name, transport.ErrNotFound)
	case transport.KindQueue:
		if group != "" {
			return nil, fmt.Errorf("inmem: %w: queue %q takes no group", transport.ErrInvalid, a.Name)
		}
		if q := b.queues[a.Name]; q != nil {
			return q, nil
		}
		return nil, fmt.Errorf("inmem: queue %q: %w", a.Name, transport.ErrNotFound)
	}
	return nil, fmt.Errorf("inmem: %w: no admin operations on a %v address", transport.ErrInvalid, a.Kind)
}

func (c *conn) lookup(a transport.Address, group string) (*queue, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	return c.b.find(a, group)
}

// DeleteGroup implements transport.Admin.
func (c *conn) DeleteGroup(_ context.Context, topic, group string) error {
	if err := c.check(); err != nil {
		return err
	}
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.find(transport.Topic(topic), group); err != nil {
		return err
	}
	delete(b.topics[topic], group)
	return nil
}

// DeleteQueue implements transport.Admin.
func (c *conn) DeleteQueue(_ context.Context, name string) error {
	if err := c.check(); err != nil {
		return err
	}
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.find(transport.Queue(name), ""); err != nil {
		return err
	}
	delete(b.queues, name)
	return nil
}

// Purge implements transport.Admin. Messages held by consumers are not
// purged: released, they are delivered again.
func (c *conn) Purge(_ context.Context, a transport.Address, group string) error {
	q, err := c.lookup(a, group)
	if err != nil {
		return err
	}
	q.mu.Lock()
	clear(q.ready)
	q.ready, q.head = q.ready[:0], 0
	q.broadcast() // room for blocked senders
	q.mu.Unlock()
	return nil
}

// Inspect implements transport.Admin.
func (c *conn) Inspect(_ context.Context, a transport.Address, group string) (transport.QueueInfo, error) {
	q, err := c.lookup(a, group)
	if err != nil {
		return transport.QueueInfo{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return transport.QueueInfo{Messages: q.len(), Consumers: int(q.consumers.Load())}, nil
}

// Peek implements transport.Admin: copies of the oldest waiting messages,
// with DeliveryCount the deliveries so far (0 if none).
func (c *conn) Peek(_ context.Context, a transport.Address, group string, limit int) ([]*transport.Message, error) {
	q, err := c.lookup(a, group)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(max(1, limit), q.len())
	out := make([]*transport.Message, n)
	for i := range n {
		e := q.ready[q.head+i]
		m := e.msg
		m.DeliveryCount, m.AckID = e.count, nil
		out[i] = &m
	}
	return out, nil
}

var _ transport.ConsumerCounter = (*conn)(nil)

// Consumers implements transport.ConsumerCounter.
func (c *conn) Consumers(_ context.Context, queue string) (int, error) {
	q, err := c.lookup(transport.Queue(queue), "")
	if err != nil {
		return 0, err
	}
	return int(q.consumers.Load()), nil
}
