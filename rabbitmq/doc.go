// Package rabbitmq is the RabbitMQ adapter of Switchboard: it implements
// package transport over AMQP 0-9-1 with github.com/rabbitmq/amqp091-go.
//
// Import it for its side effect to register the "amqp" and "amqps" URL
// schemes, or call Open:
//
//	import _ "github.com/switchboard-go/switchboard/rabbitmq"
//	t, err := transport.Open(ctx, "amqp://user:pass@host:5672/vhost?prefetch=50")
//
// # URL
//
// amqp://user:pass@host:port/vhost, or amqps://… for TLS (the path is the
// virtual host, URL-escaped: %2F for "/"; an empty path or "/" is the
// default virtual host). The nodes of a cluster go in one URL, separated
// by commas, each with its port: amqp://user:pass@h1:5672,h2:5672,h3:5672/vhost.
// The adapter connects to the first that answers, in order; when the
// connection is lost it tries the hosts in turn, starting with the one
// after the lost host, and backs off (reconnect_max) after each round in
// which none answered. A host that drops packets instead of refusing
// holds each attempt for connection_timeout (amqp091-go's default: 30s);
// lower it for clusters (connection_timeout=2000, in milliseconds).
// Query parameters:
//
//	prefix=STR             prepended to every exchange and queue name (default "")
//	prefetch=N             QoS prefetch of every subscription; default: SubscribeOptions.MaxInFlight
//	queue_type=quorum|classic  type of group and point-to-point queues (default quorum)
//	publish_window=N       publishes awaiting a confirm per channel (default 1000)
//	max_message_size=N     largest Message.Size accepted, bytes (default 16 MiB)
//	reconnect_max=DURATION cap of the reconnection backoff (default 5s)
//	connection_name=STR    connection name shown by the broker (default "switchboard")
//	quorum_initial_group_size=N  members (replicas) of each quorum queue declared
//	                       (x-quorum-initial-group-size; default: the broker's, a member on every node)
//
// and those amqp091-go understands: heartbeat, connection_timeout,
// channel_max, auth_mechanism, and for amqps cacertfile, certfile, keyfile,
// server_name_indication (or Options.TLSConfig). Any other parameter, or a
// bad value, is an error matching transport.ErrInvalid that lists the
// accepted ones. Passwords never appear in errors or logs. A broker
// certificate that does not verify fails with an error matching
// transport.ErrTLS, refused credentials with transport.ErrUnauthorized.
//
// # Topology
//
// The adapter declares what it uses, always with the same arguments (a
// declaration that differs from an existing one fails with 406
// PRECONDITION_FAILED, reported as transport.ErrInvalid):
//
//   - Topic T: a durable topic exchange named prefix+T, declared on first
//     Send (cached per connection) and by Subscribe.
//   - Consumer group G of topic T: GroupPartitions (4) durable queues
//     named prefix+T+"~"+G+"~p"+n ("~" never occurs in Switchboard names,
//     so group queues cannot collide with point-to-point queues),
//     x-queue-type=quorum (or classic) and x-single-active-consumer=true,
//     queue n bound to the exchange with binding key n+".#"; and a queue
//     prefix+T+"~"+G+"~members" (classic, never published to) whose
//     consumers are the group's members. Messages sent before the group's
//     first declaration were routed nowhere, as the contract requires.
//     Every member consumes every partition queue, on a channel each; the
//     broker delivers each partition to one member at a time, so one
//     key's messages are handled one at a time and in order across the
//     members. A member active on more than its share of the partitions
//     (ceil(4/members), checked every 300ms) gives the extra ones back:
//     it stops handing their deliveries out, waits until the ones it
//     handed out are settled, and closes their channel (the broker
//     returns the rest, ahead of the queue, and activates a waiting
//     member), then consumes again as a waiting consumer. Released
//     deliveries (Nack) of a partition are returned the same way, when
//     its channel closes, never by basic.nack. The members queue lives on
//     one node (the one its first member declared it on): while that
//     node is down, members count 0 and do not balance (each partition
//     still has one active member, which may hold more than its share
//     until the node is back). It stays a classic queue: a quorum queue
//     would survive, but RabbitMQ 3.10 counts the consumers of a lost
//     node in its consumer count until the node returns (members would
//     release partitions they must take back, over and over), and a
//     non-durable one, deleted with its node and declared again by the
//     members, is refused by RabbitMQ 4.3 (transient_nonexcl_queues).
//     Upgrading from 0.1: the
//     former group queue prefix+T+"~"+G, bound with "#", still receives
//     every message until deleted; drain it, then delete it.
//   - Queue Q (notification recipients, request queues): a durable queue
//     named prefix+Q, same arguments, created by Declare or Subscribe.
//   - Reply inbox: RabbitMQ's direct reply-to (amq.rabbitmq.reply-to);
//     no queue is declared.
//
// Names longer than 255 bytes (the AMQP limit) keep their first 200 bytes
// followed by "-" and 24 hex digits of their SHA-256. A name beginning
// with "amq." (reserved by the broker) gets a leading "~", a character
// Switchboard names never contain, so the mapping is collision-free.
//
// # Publishing
//
// Every channel that publishes is in confirm mode. Send publishes its
// batch pipelined (up to publish_window unconfirmed messages per channel,
// shared by concurrent Send calls) and returns once the broker confirmed
// every message; every wait is bounded by the context. Messages to topics
// and queues are persistent (delivery mode 2). A message to a queue is
// published to the default exchange with routing key = queue name and the
// mandatory flag: if no such queue exists, the broker returns it
// (basic.return, 312 NO_ROUTE) and Send fails with transport.ErrNotFound
// within one round trip — nothing is silently lost. Topic messages are
// not mandatory (a topic without groups drops them, as the contract says)
// and carry the routing key partition+"."+Key (partition: FNV-1a of the
// key, or of the message ID for a message without key, modulo
// GroupPartitions; the key is left out when the whole would not fit 255
// bytes).
// A basic.nack is retried a few times with backoff, each time on a new
// channel (RabbitMQ 3.10 keeps a per-channel client of each quorum queue
// that, made while the node of the queue's recorded leader is down, nacks
// every later publish on that channel), then reported as
// transport.ErrUnavailable. Each message's outcome is the first
// basic.ack or basic.nack that covered its delivery tag: RabbitMQ may
// nack a message at once and later cover its tag with a cumulative ack
// of the messages after it, which amqp091-go's ordered confirm stream
// would report as an ack. When the context ends while Send waits for
// the confirms of messages it has already written, Send keeps collecting
// them for up to 250ms before it returns the context's error: those
// messages cannot be withdrawn, and reporting them as failed would only
// make the caller send them again (a consumer may even have received
// them already, since a quorum queue can deliver before it confirms).
// A message the broker keeps rejecting by closing the channel or
// connection (not a restart) is republished at most three times.
//
// # Reconnection
//
// The adapter runs its own recovery and does not use amqp091-go's
// Config.Recovery. A goroutine watches the connection's NotifyClose and
// redials with exponential backoff and jitter (50ms up to reconnect_max).
// Every channel (publisher, topology, each subscription, each inbox) has a
// keeper that watches the channel's NotifyClose and, once a connection is
// back, opens a new channel and sets it up again: confirm mode, QoS,
// topology declarations, consumers. Messages a Send published but that
// were not confirmed when their channel closed are republished on the new
// channel, in order, by that Send (at-least-once: a message the broker
// had stored but not confirmed arrives twice). Receive keeps waiting
// through a reconnect; deliveries of a closed channel are redelivered by
// the broker, and acks for them are ignored.
//
// # Consuming
//
// One consumer per subscription, on its own channel, manual acks, QoS
// prefetch = SubscribeOptions.MaxInFlight (or the prefetch option), so a
// single consumer receives a queue in order; package messaging serialises
// per key. Ack is basic.ack, Nack is basic.nack with requeue; Close closes
// the channel, which returns unsettled deliveries to the queue. Acks of a
// delivery already settled, or of a channel since closed, are ignored
// (a second ack would make the broker close the channel).
//
// DeliveryCount comes from quorum queues' x-delivery-count header (the
// number of earlier deliveries; absent on the first): DeliveryCount =
// x-delivery-count + 1. RabbitMQ 3.x counts every return to the queue
// (nack with requeue, channel closed with unacked deliveries). With
// queue_type=classic, DeliveryCount is 0 and Capabilities.DeliveryCount
// is false.
//
// # Request/reply
//
// OpenInbox opens a channel with a no-ack consumer on
// amq.rabbitmq.reply-to. Its Address is the channel's full direct
// reply-to address ("amq.rabbitmq.reply-to.<opaque>"), learned when the
// inbox opens by publishing a mandatory probe that no queue can route,
// with reply-to amq.rabbitmq.reply-to: the broker rewrites the reply-to
// and returns the probe. When Send sees a message whose ReplyTo is the
// address of one of this transport's inboxes, it publishes that message
// on the inbox's own channel with reply-to amq.rabbitmq.reply-to, as the
// broker requires, so that the broker rewrites it to the inbox's current
// address (requests to queues and scatter-gather requests to topics take
// the same path, with confirms and the mandatory flag). A responder sends
// to Reply(addr): a transient publish to the default exchange with routing
// key addr; a reply to an inbox that is gone is dropped by the broker
// without error. After a reconnect an inbox gets a new broker address;
// its Address does not change, and this transport maps it to the new one
// both in requests' ReplyTo and in Send(Reply(Address())). A ReplyTo of
// exactly "amq.rabbitmq.reply-to" is refused (ErrInvalid): the broker
// would close the channel.
//
// # Wire mapping
//
// The CloudEvents AMQP protocol binding, binary mode (SEMANTICS.md,
// "Wire mappings", has the full table): every CloudEvents attribute but
// datacontenttype is an application property with the preferred prefix
// "cloudEvents_" (AttrPrefix); both "cloudEvents_" and "cloudEvents:"
// (AttrPrefixColon) are read, in any case. datacontenttype is the
// content-type property. The native properties message-id, type,
// correlation-id, reply-to and timestamp are set too, for AMQP clients
// that do not speak CloudEvents; on receipt the CloudEvents properties win.
//
//	Message field   AMQP
//	ID              cloudEvents_id, and the message-id property (up to 255 bytes);
//	                read: cloudEvents_id, else message-id, else empty
//	Source          cloudEvents_source (the client's source when empty)
//	Type            cloudEvents_type ("switchboard.message" when empty, read
//	                back as empty), and the type property when set
//	ContentType     content-type property (over 255 bytes: application
//	                property content-type)
//	CorrelationID   cloudEvents_correlationid, and the correlation-id property
//	ReplyTo         the reply-to property (cloudEvents_replyto only when over
//	                255 bytes): for direct reply-to the broker rewrites it to
//	                the inbox's current address; read: reply-to, else
//	                cloudEvents_replyto
//	Time            cloudEvents_time (RFC 3339, nanoseconds), and the
//	                timestamp property (seconds); read: cloudEvents_time,
//	                else timestamp
//	Version         cloudEvents_dataversion
//	Key             cloudEvents_partitionkey (and the routing key on topics)
//	Headers         application properties, string values ("sb-" headers
//	                included); on receipt, values of other AMQP types are
//	                rendered as strings, other cloudEvents_ extensions become
//	                headers, and reserved or non-UTF-8 ones arrive escaped
//	                (transport.EscapeHeader)
//	Body            body, unchanged (binary, may be empty)
//	(always)        cloudEvents_specversion "1.0"
//	(always)        delivery-mode 2 (persistent) to topics and queues, 1 to replies
//	DeliveryCount   x-delivery-count header + 1 (quorum queues); the header is
//	                removed from Headers
//	AckID           the delivery tag on its channel
//	AsFunc          *amqp091.Delivery / **amqp091.Delivery
//
// Header names are AMQP short strings (at most 255 bytes); headers with
// longer names (package messaging allows 256) travel in one header,
// "switchboard:long-headers", an array of long strings name, value,
// name, value…, and are restored on receipt. A reply to a direct reply-to
// address whose encoded channel does not decode (it can name no inbox,
// and RabbitMQ 3.x would crash the connection on it) is dropped. Capabilities: MaxMessageSize from max_message_size (the
// broker's own limit, 128 MiB by default, bounds the body), no header
// limit, OrderedByKey true (a key's messages go to one partition, delivered
// to one member at a time; the listeners of one notification or request
// queue share it without key affinity), DeliveryCount true with quorum queues, NativeDeadLetter true
// (the broker has dead-letter exchanges; package messaging dead-letters by
// itself), NativeReplyTo true.
//
// # Native vs emulated
//
// A consumer cancelled by the broker (basic.cancel: its queue was deleted,
// its node left) closes the delivery channel but not the AMQP channel; the
// adapter then closes the channel, and the channel's keeper declares,
// binds and consumes again (the reply inbox likewise opens a new direct
// reply-to consumer).
//
// Native: topic fan-out to groups (exchanges and bindings), durable
// groups and queues, publisher confirms, unroutable detection (mandatory),
// delivery count (quorum queues), redelivery on nack or close, direct
// reply-to. Emulated by this adapter: republishing unconfirmed messages
// and resuming consumers after a reconnect, the stable inbox address
// across reconnects, the size limit. Left to package messaging: retries,
// dead-lettering, per-key serialisation, request correlation.
//
// # Escape hatches
//
// Transport.As accepts **amqp091.Connection (the current connection) and
// *Options; a received message's As accepts *amqp091.Delivery.
//
// # Administration and tests
//
// Transport implements transport.Admin (see messaging.Admin): passive
// queue.declare to inspect (ready messages and consumers) without
// creating, queue.purge, queue.delete; it cannot peek, since a quorum
// queue counts every delivery in x-delivery-count. On a consumer group it
// acts on every queue of the group (its partition queues, its members
// queue, and a 0.1 group queue prefix+T+"~"+G left by an upgrade):
// Inspect sums the ready messages of the partitions and reports the
// consumers of the members queue (the group's members), Purge purges
// every partition, DeleteGroup deletes every queue (their bindings go
// with them); each fails with transport.ErrNotFound only when none of
// the group's queues exists. It implements
// transport.ConsumerCounter, so a request to a service whose queue has
// no consumer fails at once with messaging.ErrNoResponders, and it sets
// the expiration property of requests to their deadline, so an expired
// request does not stay queued. Tests delete what they declared with
// package rabbitmqtest.
package rabbitmq
