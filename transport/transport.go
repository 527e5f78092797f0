// Package transport defines the small contract a Switchboard adapter
// implements, in the spirit of database/sql/driver and the Go CDK's
// pubsub/driver.
//
// Services do not use this package: they use package messaging, which owns
// every delivery rule (acknowledgement on handler success, retries,
// dead-lettering, per-key ordering, request/reply correlation and
// shutdown). An adapter only moves messages: it sends batches to an
// Address, receives them from a subscription, acknowledges or releases
// them, and says what its broker does natively (Capabilities).
//
// Concurrency: every method of Transport may be called from many
// goroutines at once. Subscription.Receive is called from one goroutine at
// a time; Ack and Nack may be called concurrently with Receive and with
// each other.
//
// Errors: adapters wrap broker errors (never hide them) and mark them with
// the sentinel values of this package with %w, so that package messaging
// can test them with errors.Is.
package transport

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Kind says what sort of destination an Address names.
type Kind uint8

const (
	// KindTopic is a publish/subscribe destination. Every consumer group
	// declared on the topic receives every message published after the
	// group was declared; consumers within one group share the messages.
	// A topic is created by the adapter when first published to or
	// subscribed to.
	KindTopic Kind = iota + 1
	// KindQueue is a point-to-point destination: each message goes to one
	// consumer and is held until consumed, even if no consumer was
	// connected when it was sent. A queue exists only once Declare (or
	// Subscribe) created it; Send to a missing queue fails with an error
	// that matches ErrNotFound.
	KindQueue
	// KindReply is a client's reply inbox, named by Inbox.Address. Replies
	// are not retained beyond the inbox's life.
	KindReply
)

// String returns "topic", "queue" or "reply".
func (k Kind) String() string {
	switch k {
	case KindTopic:
		return "topic"
	case KindQueue:
		return "queue"
	case KindReply:
		return "reply"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Address names a destination.
type Address struct {
	Kind Kind
	Name string
}

// String returns "kind:name".
func (a Address) String() string { return a.Kind.String() + ":" + a.Name }

// Topic returns the Address of the topic name.
func Topic(name string) Address { return Address{Kind: KindTopic, Name: name} }

// Queue returns the Address of the queue name.
func Queue(name string) Address { return Address{Kind: KindQueue, Name: name} }

// Reply returns the Address of the reply inbox addr.
func Reply(addr string) Address { return Address{Kind: KindReply, Name: addr} }

// Message is a message as an adapter sees it. Package messaging validates
// every field before a message reaches an adapter: names are valid, the
// size is within Capabilities.MaxMessageSize, and Headers holds no nil map
// requirement (it may be nil).
//
// An adapter must not modify a message passed to Send, and must not keep
// it after Send returns (copy what it keeps).
type Message struct {
	// ID identifies the message; it is unique per message and stable
	// across redeliveries.
	ID string
	// Key orders messages: messages with the same non-empty key are
	// delivered to a group in the order they were sent, where the adapter
	// reports Capabilities.OrderedByKey.
	Key string
	// Body is the payload; it may be empty or nil.
	Body []byte
	// Headers holds application headers and the reserved headers of
	// package messaging (those beginning with "sb-"). Adapters carry them
	// unchanged.
	Headers map[string]string
	// ContentType is the MIME type of Body, for example
	// "application/json".
	ContentType string
	// Source is the CloudEvents source: the context in which the
	// message was created, a URI-reference, for example "orders-api".
	// Adapters write DefaultSource when it is empty.
	Source string
	// Type names the kind of message, for example "order.created".
	Type string
	// Version is the version of Type's schema, for example "2".
	Version string
	// Time is when the message was created.
	Time time.Time
	// CorrelationID ties a reply to its request.
	CorrelationID string
	// ReplyTo is the Inbox.Address to which replies are sent.
	ReplyTo string
	// Expires, when not zero, is when the message stops being useful:
	// package messaging sets it on requests to their deadline. An
	// adapter whose broker expires messages sets it on the message sent
	// to a queue (RabbitMQ: the expiration property; the in-memory
	// broker drops it), so that an expired request does not stay queued;
	// the others ignore it. It is not carried to the receiver.
	Expires time.Time
	// DeliverAt, when not zero, is the message's due time: the adapter
	// must not deliver it to any consumer before then (Capabilities.MaxDelay
	// says how far ahead an adapter accepts it). Package messaging sets
	// it only in the future and at most Capabilities.MaxDelay ahead; a
	// later due time it emulates with a delay queue (see
	// messaging.Message.DeliverAt), and it never sets it on a message
	// to a KindReply address. It is not carried to the receiver (package
	// messaging carries the due time in a reserved header).
	DeliverAt time.Time

	// The fields below are set by the adapter on received messages only.

	// DeliveryCount is how many times the broker has delivered this
	// message to the group (or queue), this delivery included (1 on first
	// delivery), or 0 when the broker does not report it. Every earlier
	// delivery counts once, however it ended: released by Close or Nack,
	// or lost with a consumer whose connection dropped. Package messaging
	// takes a message's attempt from it, and dead-letters without calling
	// the handler a delivery whose count is over MaxAttempts.
	DeliveryCount int
	// AckID identifies the delivery for Subscription.Ack and Nack. It is
	// opaque to package messaging.
	AckID any
	// AsFunc, when not nil, converts the message to the broker's native
	// type (see messaging.Message.As).
	AsFunc func(target any) bool
}

// Size returns the number of bytes the message occupies for size limits:
// the body, the header names and values, and the other string fields.
func (m *Message) Size() int {
	n := len(m.Body) + len(m.ID) + len(m.Key) + len(m.ContentType) + len(m.Type) +
		len(m.Version) + len(m.CorrelationID) + len(m.ReplyTo) + len(m.Source)
	for k, v := range m.Headers {
		n += len(k) + len(v)
	}
	return n
}

// SubscribeOptions carries what package messaging tells an adapter about a
// subscription.
type SubscribeOptions struct {
	// MaxInFlight is the most messages package messaging holds unacked at
	// once for this subscription. Adapters use it to size prefetch (QoS),
	// fetch batches and receive concurrency. It is at least 1.
	MaxInFlight int
	// LowVolume hints that few messages flow through the subscription
	// (package messaging's delay queues): an adapter that polls with
	// several concurrent receives (SQS FIFO) polls with one. It changes
	// nothing else; MaxInFlight still bounds what is held.
	LowVolume bool
}

// Transport is an open connection to a broker. It is the contract an
// adapter implements.
type Transport interface {
	// Send delivers msgs to the destination, in order, and returns once
	// the broker has accepted every one of them (durably where the broker
	// can: publisher confirms, acks=all, a successful SendMessage). A nil
	// error means every message was accepted. On error, some messages may
	// have been accepted; package messaging treats the batch as failed
	// and the caller may send it again (at-least-once). When ctx ends
	// after messages were handed to the broker, an adapter may wait
	// briefly (a few hundred milliseconds) for their acknowledgement
	// rather than report as failed what the broker accepted: consumers
	// can receive a message before its producer sees the broker's
	// acknowledgement (Kafka, RabbitMQ quorum queues).
	//
	// To a KindTopic address, Send creates the topic if it is missing.
	// To a KindQueue address that was never declared, Send fails with an
	// error matching ErrNotFound (package messaging turns it into
	// ErrNoResponders for requests). To a KindReply address, Send
	// delivers to that inbox; an inbox that no longer exists drops the
	// message without error.
	//
	// A message larger than Capabilities.MaxMessageSize fails with an
	// error matching ErrMessageTooLarge, before any network call.
	Send(ctx context.Context, to Address, msgs []*Message) error

	// Declare creates the queue at a KindQueue address if it does not
	// exist. It is idempotent. Messages sent to the queue after Declare
	// returns are held until consumed.
	Declare(ctx context.Context, a Address) error

	// Subscribe opens a subscription. For a KindTopic address, group
	// names the consumer group; it is declared durably if missing and,
	// once declared, receives every message published to the topic
	// afterwards, whether or not any consumer is connected. For a
	// KindQueue address, group is empty and the queue is declared if
	// missing. Subscribe returns once the group or queue is declared, so
	// that a message sent after it returns is received.
	Subscribe(ctx context.Context, from Address, group string, opts SubscribeOptions) (Subscription, error)

	// OpenInbox opens a reply inbox for this transport's client.
	// Package messaging opens at most one per client.
	OpenInbox(ctx context.Context) (Inbox, error)

	// Capabilities reports limits and what the broker does natively.
	Capabilities() Capabilities

	// As converts the transport to the broker's native client type, for
	// escape hatches. It returns false if target is not supported.
	As(target any) bool

	// Close releases the connection. Subscriptions and inboxes still
	// open are closed. Close is idempotent; after it, every method
	// returns an error matching ErrClosed.
	Close() error
}

// Subscription receives messages of one consumer group or queue.
type Subscription interface {
	// Receive blocks until at least one message is available, ctx is
	// done, or the subscription is closed, and returns at most max
	// messages (max is at least 1). Errors the adapter recovers from by
	// itself (a reconnect) are not returned: Receive keeps waiting. It
	// returns an error matching ErrClosed after Close, and ctx.Err() when
	// ctx ends. The returned slice is the caller's until its next call
	// of Receive, when the adapter may reuse it (so that receiving costs
	// no allocation per call); the Messages it points to stay the
	// caller's.
	Receive(ctx context.Context, max int) ([]*Message, error)

	// Ack acknowledges deliveries: the broker will not deliver them to
	// this group again. Acks of messages delivered before a reconnect may
	// fail or be ignored; the broker then redelivers them
	// (at-least-once).
	Ack(ctx context.Context, ids []any) error

	// Nack releases deliveries unprocessed: the broker will deliver them
	// again, to this or another consumer of the group, as soon as it can.
	// Package messaging does not nack: it releases what it holds at
	// shutdown with Close, which stops the broker's deliveries first. An
	// adapter that cannot release individual messages (Kafka) must at
	// least never commit past a nacked message.
	Nack(ctx context.Context, ids []any) error

	// Close stops receiving, then releases the deliveries neither acked
	// nor nacked back to the broker. In that order: the broker's
	// deliveries to this subscription stop first (basic.cancel or closing
	// the channel, no further poll, leaving the consumer group), so that
	// no released message is delivered back to this closing consumer and
	// each counts as exactly one more delivery (DeliveryCount) when the
	// group's next consumer receives it, in its key's order. Package
	// messaging calls Close at the end of every shutdown, after its last
	// Ack, and relies on it to release the messages it held unhandled.
	// Close is idempotent.
	Close() error
}

// Inbox receives replies addressed to one client.
type Inbox interface {
	// Address is the value to put in Message.ReplyTo; a Send to
	// Reply(Address()) arrives at this inbox.
	Address() string
	// Receive blocks until at least one reply is available, ctx is done,
	// or the inbox is closed. Replies need no acknowledgement.
	Receive(ctx context.Context) ([]*Message, error)
	// Close deletes the inbox where the broker can. It is idempotent.
	Close() error
}

// PushInboxOpener is implemented by transports that can hand each reply
// straight to a function instead of through Inbox.Receive. It saves the
// goroutine hand-off of a receive loop per reply where the replies do not
// arrive on a goroutine of their own anyway (the in-memory transport calls
// deliver in the goroutine of the Send that carries the reply). Package
// messaging opens its reply inbox with it when the transport implements
// it.
type PushInboxOpener interface {
	// OpenPushInbox opens a reply inbox as OpenInbox does, whose replies
	// are passed to deliver, each once, possibly from several goroutines
	// at a time. After Close, no new Send reaches deliver (one under way
	// may still). deliver must not block; m is the receiver's own. The
	// Inbox's Receive is not used: it blocks until ctx ends or the inbox
	// is closed.
	OpenPushInbox(ctx context.Context, deliver func(m *Message)) (Inbox, error)
}

// Capabilities reports a transport's limits and what its broker does
// natively; what it does not, package messaging emulates.
type Capabilities struct {
	// Name is the adapter's name: "inmem", "kafka", "rabbitmq", "sqs".
	Name string
	// MaxMessageSize is the largest Message.Size accepted, in bytes.
	// Zero means no limit.
	MaxMessageSize int
	// MaxHeaders is the most headers one message may carry, reserved
	// ones included. Zero means no limit.
	MaxHeaders int
	// OrderedByKey reports that messages with the same key reach a
	// group in the order they were sent.
	OrderedByKey bool
	// DeliveryCount reports that received messages carry the broker's
	// delivery count.
	DeliveryCount bool
	// NativeDeadLetter reports that the broker has dead-letter routing.
	// Package messaging dead-letters by itself on every transport, so
	// that the failure envelope is the same everywhere.
	NativeDeadLetter bool
	// NativeReplyTo reports that the broker has a native reply
	// mechanism (RabbitMQ's direct reply-to).
	NativeReplyTo bool
	// MaxDelay is the longest delay (Message.DeliverAt minus the time of
	// Send) the adapter delivers natively, to topics and queues; zero
	// means none. Package messaging sends a message due further ahead to
	// a delay queue that the consuming clients' schedulers forward when
	// due (see SEMANTICS.md, R114–R124).
	MaxDelay time.Duration
}

// Errors that adapters mark their errors with (wrap them with %w) and that
// package messaging tests with errors.Is.
var (
	// ErrClosed: the transport, subscription or inbox is closed.
	ErrClosed = errors.New("switchboard: closed")
	// ErrNotFound: the destination does not exist.
	ErrNotFound = errors.New("switchboard: destination not found")
	// ErrMessageTooLarge: a message exceeds the transport's size or
	// header limits.
	ErrMessageTooLarge = errors.New("switchboard: message too large")
	// ErrInvalid: an argument, a name, a URL or an option is not valid.
	ErrInvalid = errors.New("switchboard: invalid argument")
	// ErrUnavailable: the broker cannot be reached now; the operation
	// may succeed later.
	ErrUnavailable = errors.New("switchboard: broker unavailable")
)
