// Package kafka is the Switchboard transport for Apache Kafka, built on
// github.com/segmentio/kafka-go. Importing it registers the "kafka" URL
// scheme:
//
//	import _ "github.com/switchboard-go/switchboard/kafka"
//
//	t, err := transport.Open(ctx, "kafka://broker1:9092,broker2:9092?partitions=6")
//
// or, with Go values, Open(ctx, brokers, Options{...}).
//
// # URL
//
//	kafka://[user:password@]host1:9092,host2:9092[?option=value&...]
//
// Hosts without a port use 9092. Options (unknown ones are refused with an
// error matching transport.ErrInvalid that lists these):
//
//	client_id           client ID sent to brokers; starts reply topic names (switchboard)
//	tls                 true: connect with TLS (implied by the tls_* options)
//	tls_ca              PEM file of the CAs to trust
//	tls_cert, tls_key   PEM files of a client certificate and its key
//	tls_server_name     name to verify in the broker certificates
//	tls_insecure        true: do not verify broker certificates
//	sasl                plain | scram-sha-256 | scram-sha-512; the user and password
//	                    are the URL's user info
//	partitions          partitions of the topics and queues the adapter creates (3)
//	replication         their replication factor; -1: the broker's default (-1)
//	balancer            key to partition hash: crc32 (default) or murmur2, see below
//	max_message_bytes   the brokers' message.max.bytes (1048588)
//	batch_timeout       producer linger (0: none)
//	session_timeout     consumer group session timeout (10s)
//	heartbeat_interval  consumer group heartbeat interval (1s)
//	rebalance_timeout   consumer group rebalance timeout (10s)
//	drain_timeout       how long a member losing partitions waits for the acks of
//	                    messages it delivered before it commits (8s)
//	max_wait            fetch long-poll time; also bounds closing a subscription (500ms)
//	metadata_ttl        metadata cache lifetime (1s)
//	dial_timeout        connect timeout (5s)
//	join_backoff        pause before rejoining a group after an error (250ms)
//
// Passwords never appear in errors or logs.
//
// # Names
//
// Each kind of destination has its own namespace of Kafka topics, so that a
// queue "x" and a topic "x" never collide:
//
//	Topic(name)   Kafka topic "topic.<name>"
//	Queue(name)   Kafka topic "queue.<name>"
//	reply inbox   Kafka topic "reply.<client id>-<16 hex digits>" (the inbox Address)
//
// A name that Kafka does not accept as is (characters outside
// [A-Za-z0-9.-], the name "." or "..", or too long for Kafka's 249
// characters) becomes "<kind>-h.<sanitised name>.<24 hex digits of its
// SHA-256>". Names holding '_' are hashed too, because Kafka refuses two
// topics whose names differ only in '.' versus '_'.
//
// Consumer groups: a topic subscription of group g joins the Kafka
// consumer group "<kafka topic>:<g>" (for example "topic.orders:billing");
// a queue is consumed by the group named like its Kafka topic ("queue.jobs").
//
// # Wire mapping (CloudEvents Kafka protocol binding, binary mode)
//
//	Message.Body           record value (unchanged; empty body: empty value)
//	Message.Key            record key (no key: null key); also the CloudEvents
//	                       "partitionkey" attribute, which is why ce_partitionkey
//	                       is not written
//	Message.ID             header ce_id
//	Message.Source         header ce_source (the client's source when empty)
//	Message.Type           header ce_type ("switchboard.message" when empty,
//	                       read back as empty)
//	Message.Time           header ce_time (RFC 3339, nanoseconds) and the record
//	                       timestamp (milliseconds)
//	Message.Version        header ce_dataversion
//	Message.CorrelationID  header ce_correlationid
//	Message.ReplyTo        header ce_replyto
//	Message.ContentType    header content-type
//	(always)               header ce_specversion=1.0
//	Message.Headers        one record header each, same name and value (the
//	                       "sb-" headers of package messaging included)
//
// Records from other producers (kcat, Java, librdkafka, the CloudEvents
// SDKs) are accepted: the headers above are read when present, ce_ and
// content-type in any case (lower-case content-type first); without ce_time
// the record timestamp becomes Message.Time; without ce_id the ID is
// "<kafka topic>-<partition>-<offset>". Other ce_ headers (CloudEvents
// extensions) land in Message.Headers under the attribute name; every other
// header lands in Message.Headers as it is, escaped (transport.EscapeHeader)
// when its name is reserved or its name or value is not valid UTF-8, so
// that the message can be published again. For a repeated header name, the
// last value wins. SEMANTICS.md, "Wire mappings", has the full table.
//
// # Keys and partitions
//
// Keyed messages go to the partition the configured hash gives their key.
// The default, crc32 (kafka-go's CRC32Balancer), maps keys like
// librdkafka's default partitioner (consistent_random), hence like kcat,
// confluent-kafka-go/python/dotnet and node-rdkafka. balancer=murmur2
// (Murmur2Balancer) maps keys like the Java client's default partitioner
// (Kafka Streams, Kafka Connect, the kafka-console-producer). Producers
// sharing keyed topics must use the same hash. (kafka-go's own default,
// Hash, matches neither: avoid it for topics shared with other clients.)
// Unkeyed messages of one Send all go to one partition (chosen per Send),
// so that a batch keeps its order.
//
// # What Kafka does natively, and what is emulated
//
// Producing: acks=all (every in-sync replica) through kafka-go's
// Client.Produce, with one produce request in flight per partition (as
// franz-go's producer does): a Send to an idle partition is sent at once,
// with no linger, and the Sends that arrive while a request is in flight
// leave together in the next one (up to 10,000 records and
// max_message_bytes); batch_timeout, when set, makes each request wait
// that long for more records first. A failed request is retried, up to 10
// attempts with backoff (50ms to 1s), before anything queued behind it is
// sent, so retries never reorder a partition. Send waits for the acknowledgement,
// bounded by the caller's context. When the context ends while the broker's
// acknowledgement is on its way, Send waits up to 200ms for it rather than
// report a failure for messages the broker accepted (consumers can see a
// record before its producer sees the acknowledgement).
//
// Native: durable topics and consumer groups (each group gets every
// message; the members of a group share the partitions), per-partition
// order, hence per-key order (Capabilities.OrderedByKey), acks=all
// producing, retention.
//
// Emulated or adapted:
//
//   - Topics and queues are created by the adapter (CreateTopics) with the
//     configured partitions and replication; brokers need not auto-create.
//   - Group declaration: Kafka groups have no "declared" state. On a group's
//     first Subscribe (no committed offset for the topic), the adapter
//     commits the current end offset of every partition before Subscribe
//     returns: the group gets nothing published before and everything
//     published after, whether or not a member is connected.
//   - Queues are topics read by one fixed group that starts at the earliest
//     offset, so nothing sent after Declare is missed. Send to a queue
//     never declared fails fast with transport.ErrNotFound (the adapter
//     checks the topic exists with DescribeConfigs; brokers' auto-creation
//     is never relied upon).
//   - Acknowledgement: Kafka commits one offset per partition. The adapter
//     delivers each partition in offset order (several partitions at once)
//     and commits, per partition, the lowest offset not yet acknowledged:
//     it never commits past unfinished work. Commits are asynchronous after
//     Ack and synchronous when partitions are revoked or the subscription
//     closes. Kafka cannot release one message, so Nack rewinds the
//     message's partition: the subscription delivers it, and what follows
//     it on its partition, again (acks of the earlier deliveries of those
//     are then ignored), and never commits past it meanwhile, so that if
//     the subscription closes first, the group's next consumer gets it.
//   - Rebalances: a member losing partitions stops handing out their
//     messages, waits up to drain_timeout for acknowledgements of those it
//     delivered, commits, and gives them up; the group's new generation,
//     and so the new owners, start only once it rejoined, so a key's
//     messages are never handled by two members at once unless handling
//     outlasts drain_timeout. After it, later acks of those messages
//     are ignored and the messages are redelivered to the new owner, in
//     offset order (at-least-once; duplicates are possible, losses are
//     not).
//   - DeliveryCount is emulated: Kafka has none. Every message a member
//     hands out and has not finished is counted durably in the metadata of
//     the group's committed offset ("sb-attempts:<offset>:<n>,..." in
//     offset order), committed before Receive returns the batch (one
//     commit per batch), and kept by each ordinary commit while the
//     message is unfinished; so a message that crashes its consumers is
//     reported with a growing count wherever it sits on its partition. A
//     message fetched with a count an earlier member left (a crash
//     suspect) is handed out alone: once the deliveries of its partition
//     before it are settled, and nothing after it until it is settled, so
//     a message beside a crashing one is not redelivered with each crash.
//     The metadata holds at most 4,000 bytes (Kafka's default
//     offset.metadata.max.bytes is 4,096; about 180 counts with 19-digit
//     offsets): past it the newest unfinished messages are not recorded
//     and count from 1 again after a crash.
//   - Reply inboxes are one-partition topics per client, read without a
//     group from their end at OpenInbox, and deleted by Inbox.Close.
//     Sending to an inbox that no longer exists drops the reply.
//   - Dead-lettering and retries are done by package messaging.
//
// Brokers: Apache Kafka 0.11 or later (record headers), except 4.0.0, which
// dropped the JoinGroup v1 that kafka-go's consumer groups speak (4.0.1
// and 4.1 restored it; see segmentio/kafka-go#1360), or compatible
// brokers (Redpanda, kfake).
//
// Size: Capabilities.MaxMessageSize is max_message_bytes minus 16 KiB for
// record, batch and header overhead; at most 256 headers per message.
//
// As: Transport.As accepts **kafka.Client and **kafka.Transport (github.com/segmentio/kafka-go); a received message's
// As accepts *kafka.Message (the record as read).
//
// Admin (transport.Admin, see messaging.Admin): DeleteGroup deletes the
// consumer group (DeleteGroups), DeleteQueue the queue's topic and group
// (DeleteTopics is asynchronous on a real cluster: re-creating the queue
// at once may fail until it completes), Purge commits the end offsets,
// Inspect counts the records after the group's committed offsets and the
// group's members, and Peek fetches from those offsets without joining
// the group or committing. Kafka refuses to delete or purge a group with
// members (ErrInvalid).
//
// Responders: the adapter implements transport.ConsumerCounter with the
// members of a queue's consumer group (DescribeGroups). Subscribe to a
// queue returns once its consumer joined the group (at most
// SessionTimeout+RebalanceTimeout, or when ctx ends; a real cluster delays
// a new group's first join by group.initial.rebalance.delay.ms, 3s by
// default), and Close leaves it, so a request to a service nobody serves
// any more fails at once with messaging.ErrNoResponders; a responder whose
// process died counts until its session times out (SessionTimeout,
// default 10s).
package kafka
