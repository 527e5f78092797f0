package transport

import "context"

// Admin is implemented by transports that can delete, purge and inspect the
// consumer groups and queues that Subscribe and Declare create. It is
// optional, in the spirit of the Go CDK's optional driver interfaces:
// package messaging finds it with a type assertion on the Transport and
// reports errors.ErrUnsupported when it is missing. Every adapter of this
// module implements it.
//
// Addressing: a consumer group is named by a KindTopic Address and a
// non-empty group; a queue (a recipient's queue, a service's request queue
// "<service>.rpc", a dead-letter queue) by a KindQueue Address and an
// empty group.
//
// No method declares anything: on a missing group or queue every method
// fails with an error matching ErrNotFound and leaves the broker as it
// was. Package messaging has validated the names; adapters reject other
// kinds (KindReply) with ErrInvalid.
//
// Deleting or purging a group or queue that consumers are connected to is
// not portable (RabbitMQ cancels them and they declare it again, Kafka
// refuses to delete an active group): close the subscriptions first.
type Admin interface {
	// DeleteGroup deletes the consumer group of topic, with the messages
	// it holds. The topic and its other groups are untouched. A later
	// Subscribe declares the group again, as new: it receives only what
	// is published after that Subscribe.
	DeleteGroup(ctx context.Context, topic, group string) error

	// DeleteQueue deletes the queue with the messages it holds. A later
	// Declare creates it again, empty.
	DeleteQueue(ctx context.Context, name string) error

	// Purge removes every message waiting in a queue (a KindQueue
	// address, empty group) or a consumer group (a KindTopic address and
	// its group) and keeps it declared: messages sent afterwards are
	// held and delivered as before. Messages held unacknowledged by a
	// consumer at the time may survive the purge.
	Purge(ctx context.Context, a Address, group string) error

	// Inspect reports, without consuming anything, how many messages wait
	// in a queue or group.
	Inspect(ctx context.Context, a Address, group string) (QueueInfo, error)

	// Peek returns up to max (at least 1) of the messages waiting in a
	// queue or group, oldest first, without consuming them and without
	// raising their delivery counts: they stay queued, and their next
	// consumer sees them as if they had never been read. The messages
	// carry no AckID. Where the broker cannot read a message without
	// counting a delivery (RabbitMQ quorum queues count a basic.get
	// released again; SQS counts every ReceiveMessage in
	// ApproximateReceiveCount), Peek fails with an error matching
	// errors.ErrUnsupported (after checking that the queue exists).
	Peek(ctx context.Context, a Address, group string, max int) ([]*Message, error)
}

// QueueInfo is what Admin.Inspect reports about a queue or group.
type QueueInfo struct {
	// Messages is how many messages wait to be consumed. Where the
	// broker tracks it, messages delivered to a consumer and not yet
	// acknowledged are not counted (RabbitMQ, SQS, inmem); on Kafka it is
	// the number of records after the group's committed offsets, so
	// messages being handled count until committed. On SQS the number is
	// approximate (ApproximateNumberOfMessages).
	Messages int
	// Consumers is how many consumers are connected, or -1 when the
	// broker does not say (SQS).
	Consumers int
}

// ConsumerCounter is implemented by transports that can tell, in one
// broker call and without delay, how many consumers are connected to a
// queue: consumers counted as soon as Subscribe returns and no longer
// once they close or their connection drops. Package messaging uses it to
// fail a request at once with ErrNoResponders when a service's queue has
// no consumer. Every adapter of this module implements it: inmem and
// RabbitMQ count connected consumers, Kafka the queue's group members (its
// Subscribe returns once joined), SQS the consumers' leases (queue tags);
// a consumer whose process died counts until the broker expires it
// (Kafka's session timeout, the SQS lease). A transport without it lets
// every request to an existing queue go, to wait for its deadline.
type ConsumerCounter interface {
	// Consumers returns how many consumers are connected to the queue
	// name; an error matching ErrNotFound when it does not exist; an
	// error matching errors.ErrUnsupported when the broker cannot tell for
	// this queue (Kafka: its consumer group is unknown to the broker; SQS:
	// no consumer ever took a lease on it), for example because its
	// consumers were not written with Switchboard. Package messaging
	// lets a request go on any error but ErrNotFound.
	Consumers(ctx context.Context, queue string) (int, error)
}
