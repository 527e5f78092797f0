package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchboard-go/switchboard/transport"
)

// ErrNotFound is returned by the Admin methods for a consumer group or
// queue that does not exist. Admin methods never create one.
var ErrNotFound = transport.ErrNotFound

// QueueInfo is what Admin.Inspect reports: Messages waiting (approximate
// on SQS; on Kafka, records after the group's committed offsets) and
// Consumers connected (-1 where the broker does not say: SQS). See
// transport.QueueInfo.
type QueueInfo = transport.QueueInfo

// RequestQueue returns the name of the queue that holds the requests of a
// service (Request, RequestAsync, Serve): "<service>.rpc". Give it to the
// Admin methods to delete, purge or inspect a service's queue.
func RequestQueue(service string) string { return requestQueue(service) }

// Admin deletes, purges and inspects the consumer groups and queues that a
// Client's patterns declare: a topic's group (Subscribe, Respond), a
// recipient's queue (Notify, Listen), a service's request queue (Serve,
// named by RequestQueue) and a dead-letter queue (named by
// DeadLetterQueue). Get one with Client.Admin; it is safe for concurrent
// use and lives as long as its Client.
//
// Its methods name what they act on as DeadLetterQueue does: a topic and a
// non-empty group name a consumer group; a name and an empty group name a
// queue.
//
// Errors: ErrInvalid for a bad name (as everywhere, before any broker
// call); ErrNotFound for a group or queue that does not exist (no method
// creates one, so a typo never leaves a durable queue behind; callers that
// want idempotent deletes test errors.Is(err, ErrNotFound)); ErrClosed
// after the Client is closed; errors.ErrUnsupported when the transport
// does not implement transport.Admin (every adapter of this module does),
// or, from Peek only, when the broker cannot read without counting a
// delivery.
//
// Deleting or purging a group or queue while consumers are connected to it
// is not portable: close their subscriptions first.
type Admin struct{ c *Client }

// Admin returns the client's administration surface.
func (c *Client) Admin() *Admin { return &Admin{c: c} }

// start validates the call and returns the transport's Admin; the caller
// must call c.ops.Done when it returns nil.
func (a *Admin) start(ctx context.Context, name, group string) (transport.Admin, error) {
	what := "queue"
	if group != "" {
		what = "topic"
	}
	if err := validName(what, name); err != nil {
		return nil, err
	}
	if group != "" {
		if err := validName("group", group); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ta, ok := a.c.t.(transport.Admin)
	if !ok {
		return nil, fmt.Errorf("switchboard: the %s transport has no admin operations: %w", a.c.caps.Name, errors.ErrUnsupported)
	}
	if err := a.c.enter(); err != nil {
		return nil, err
	}
	return ta, nil
}

// address returns what name and group designate, and its description for
// errors.
func address(name, group string) (transport.Address, string) {
	if group != "" {
		return transport.Topic(name), fmt.Sprintf("group %s of topic %s", group, name)
	}
	return transport.Queue(name), "queue " + name
}

// DeleteGroup deletes the consumer group of topic, with the messages it
// holds, on the broker. The topic and its other groups are untouched, and
// so is the group's dead-letter queue (delete it with DeleteQueue of
// DeadLetterQueue(topic, group)). A later Subscribe or Respond declares
// the group again, as new: it receives only what is published after it.
func (a *Admin) DeleteGroup(ctx context.Context, topic, group string) error {
	if group == "" {
		return invalid("empty group name")
	}
	ta, err := a.start(ctx, topic, group)
	if err != nil {
		return err
	}
	defer a.c.ops.Done()
	if err := ta.DeleteGroup(ctx, topic, group); err != nil {
		return wrapOp(err, "delete", "group "+group+" of topic "+topic, topic)
	}
	return nil
}

// DeleteQueue deletes a queue, with the messages it holds: a recipient's
// queue, a dead-letter queue (DeadLetterQueue) or a service's request
// queue (RequestQueue). A later Notify or Listen creates a recipient's
// queue again, empty; a Request to a service whose queue was deleted fails
// with ErrNoResponders until the service is served again.
func (a *Admin) DeleteQueue(ctx context.Context, name string) error {
	ta, err := a.start(ctx, name, "")
	if err != nil {
		return err
	}
	defer a.c.ops.Done()
	a.c.declared.Delete(name)
	if err := ta.DeleteQueue(ctx, name); err != nil {
		return wrapOp(err, "delete queue", name, name)
	}
	return nil
}

// Purge removes every message waiting in a queue (group empty) or in a
// topic's consumer group, and keeps it declared: what is sent afterwards
// is delivered as usual. Messages held by a consumer at the time may
// survive. On SQS a purge can take up to 60 seconds to complete and the
// broker allows one purge of a queue per 60 seconds.
func (a *Admin) Purge(ctx context.Context, name, group string) error {
	ta, err := a.start(ctx, name, group)
	if err != nil {
		return err
	}
	defer a.c.ops.Done()
	addr, what := address(name, group)
	if err := ta.Purge(ctx, addr, group); err != nil {
		return wrapOp(err, "purge", what, name)
	}
	return nil
}

// Inspect reports how many messages wait in a queue (group empty) or in a
// topic's consumer group, and how many consumers are connected, without
// consuming or declaring anything.
func (a *Admin) Inspect(ctx context.Context, name, group string) (QueueInfo, error) {
	ta, err := a.start(ctx, name, group)
	if err != nil {
		return QueueInfo{}, err
	}
	defer a.c.ops.Done()
	addr, what := address(name, group)
	info, err := ta.Inspect(ctx, addr, group)
	if err != nil {
		return QueueInfo{}, wrapOp(err, "inspect", what, name)
	}
	return info, nil
}

// Peek returns up to max (at least 1) of the messages waiting in a queue
// (group empty) or a topic's consumer group, oldest first, without
// consuming them, declaring anything or raising their delivery counts:
// their next consumer sees them as if they had never been read. Read a
// dead letter's envelope with ParseDeadLetter. The messages' Topic is
// name and their Attempt is 0.
//
// In-memory and Kafka transports can peek. RabbitMQ and SQS cannot read a
// message without counting a delivery (a quorum queue's
// x-delivery-count, SQS's ApproximateReceiveCount), so there Peek fails
// with an error matching errors.ErrUnsupported once it has checked that
// the queue exists (ErrNotFound otherwise); use Inspect for the count.
func (a *Admin) Peek(ctx context.Context, name, group string, max int) ([]*Message, error) {
	if max < 1 {
		return nil, invalid("Peek of %d messages; want at least 1", max)
	}
	ta, err := a.start(ctx, name, group)
	if err != nil {
		return nil, err
	}
	defer a.c.ops.Done()
	addr, what := address(name, group)
	tms, err := ta.Peek(ctx, addr, group, max)
	if err != nil {
		return nil, wrapOp(err, "peek", what, name)
	}
	out := make([]*Message, len(tms))
	for i, tm := range tms {
		out[i] = fromTransport(tm, name)
	}
	return out, nil
}
