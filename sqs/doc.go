// Package sqs is the Amazon SQS/SNS adapter of Switchboard. Importing it
// registers the "sqs" URL scheme:
//
//	import _ "github.com/switchboard-go/switchboard/sqs"
//	t, err := transport.Open(ctx, "sqs://?region=eu-west-1")
//	t, err := transport.Open(ctx, "sqs://?region=us-east-1&endpoint=http://127.0.0.1:4566") // emulator, LocalStack
//	t, err := transport.Open(ctx, "sqs://127.0.0.1:4566?region=us-east-1")                  // the same: host = http endpoint
//
// Or build one from an aws.Config with New.
//
// # URL parameters
//
//   - region: the AWS region (default: the default chain, AWS_REGION or the profile's).
//   - endpoint: an http:// or https:// base endpoint for both SQS and SNS (emulators, LocalStack).
//     The URL's host:port, if given, means endpoint=http://host:port.
//   - profile: a shared-config profile.
//   - fifo: true (default) for FIFO topics and queues, false for standard ones (see
//     Ordering). Standard mode relaxes per-key order across members: opt in knowingly.
//   - visibility: the visibility timeout of received messages, in seconds or a Go
//     duration (default 10s; extended while a message is held, see Receiving).
//   - wait: the long-poll time of one ReceiveMessage, 0-20s (default 2s). Closing a
//     subscription waits for its polls under way, so this bounds Close.
//   - receivers: concurrent long polls per subscription (default: see Receiving).
//   - inbox_prefix: the start of reply-inbox queue names (default "sb-inbox").
//
// Unknown parameters and bad values fail with transport.ErrInvalid naming
// the accepted ones. Credentials are never taken from the URL: they come
// from the default AWS chain (config.LoadDefaultConfig: environment,
// shared files, SSO, IAM roles). The SDK's default retryer is kept
// (3 attempts): smithy-go sometimes fails a response with "use of closed
// network connection" (aws-sdk-go-v2 issues 1825 and 2737), and without a
// retry the messages of a failed ReceiveMessage stay invisible until their
// visibility timeout.
//
// # Topology
//
//   - Topic T: an SNS topic named TopicName(T). Send creates it (CreateTopic is
//     idempotent; the ARN is cached, and a publish that finds it deleted creates
//     it again).
//   - Consumer group G of T: an SQS queue named GroupQueueName(T, G), subscribed to
//     the topic with RawMessageDelivery=true, with a queue policy allowing
//     sns.amazonaws.com to SendMessage from that topic's ARN. Subscribe returns once
//     queue, policy and subscription exist, so every group gets every message
//     published afterwards, durably, whether or not a consumer is connected; the
//     consumers of one group share its queue. (On real AWS a new subscription
//     can take a moment to take effect; the emulator applies it at once.)
//   - Queue Q (notifications, requests): the SQS queue QueueName(Q). Declare and
//     Subscribe create it; Send looks it up with GetQueueUrl (cached) and fails with
//     transport.ErrNotFound (QueueDoesNotExist) when it was never declared. That
//     call is not retried, so the error is fast.
//   - Reply inbox: a standard queue "<inbox_prefix>_R<random>" per OpenInbox, with
//     1 hour retention (an inbox left behind by a crashed client holds little);
//     its address is its queue URL; Close deletes it. Replies are deleted as soon
//     as they are received. A reply to a deleted inbox is dropped without error.
//
// # Names
//
// SQS and SNS names allow only [A-Za-z0-9_-], 80 characters at most (".fifo"
// included). Switchboard names map deterministically and collision-free:
// letters, digits and '-' stay; '.' becomes "_d", '_' becomes "_u", any
// other byte '_' and two upper-case hex digits ("orders.dlq" →
// "orders_ddlq"). A group queue is <topic>"_S"<group>; an inbox
// <prefix>"_R"<id>. A name longer than the limit keeps its first
// characters and ends with "_Z" and 16 hex digits of the SHA-256 of the
// whole encoded name. In FIFO mode ".fifo" is appended. No encoded name
// contains "_S", "_R" or "_Z", so the kinds never collide. Every name
// under a prefix P starts with QueueName(P), which is how a test teardown
// finds them (ListQueues with QueueNamePrefix).
//
// # Wire mapping
//
// The body is the message body. The envelope travels in SQS/SNS String
// message attributes, CloudEvents-style with the "ce-" prefix, empty
// fields omitted:
//
//	(always)              ce-specversion: 1.0
//	Message.ID            ce-id
//	Message.Source        ce-source (the client's source when empty)
//	Message.Type          ce-type ("switchboard.message" when empty)
//	Message.Time          ce-time (RFC 3339, nanoseconds, UTC)
//	Message.Version       ce-dataversion
//	Message.Key           ce-partitionkey (also MessageGroupId in FIFO mode)
//	Message.CorrelationID ce-correlationid
//	Message.ReplyTo       ce-replyto (an inbox queue URL)
//	Message.ContentType   content-type
//	Headers traceparent,  top-level attributes of the same names
//	tracestate
//	Message.Headers       sb-headers: one JSON object of the other headers
//	                      (reserved "sb-" headers included), non-ASCII \u-escaped
//	(body encoding)       sb-body-encoding: "base64" or "empty", absent for text
//	Message.DeliveryCount the ApproximateReceiveCount system attribute
//
// SQS delivers at most 10 message attributes per message. Top-level String
// attributes are written in this order of priority: ce-specversion, ce-id,
// ce-source, ce-type, content-type (named like the CloudEvents HTTP
// binding's headers, so a CloudEvents HTTP reader decodes them),
// traceparent and tracestate (where the OpenTelemetry SQS propagators
// look), ce-correlationid, ce-replyto (what a responder needs), ce-time,
// ce-partitionkey, ce-dataversion, sb-body-encoding. Other headers, and whatever of that
// list does not fit, travel in the one sb-headers attribute, a JSON
// object, under the same names. When a header name or value is not valid
// UTF-8, or when it is shorter, that attribute is "sb-headers64": a JSON
// object whose names and values are base64. An envelope value that is not
// service-safe text (see below) travels base64 under its name plus "-b64"
// (for example "ce-type-b64"). SEMANTICS.md, "Wire mappings", has the full
// table.
//
// Bodies must be valid Unicode text: a body that is not valid UTF-8, or
// holds a character the service rejects (controls other than tab, LF and
// CR; U+FFFE and U+FFFF; and characters above U+FFFF, which the fauxqs
// emulator rejects although SQS accepts them), travels base64-encoded
// with sb-body-encoding=base64. An empty body (SQS rejects empty bodies)
// travels as "-" with sb-body-encoding=empty and is received as an empty,
// non-nil slice.
//
// Messages from other producers: attributes that are not the ones above
// become headers (String and Number values as they are, Binary values as
// their bytes, escaped by transport.EscapeHeader when they are not valid
// UTF-8); ce- names are read in any case; a message without ce-id gets the
// SQS MessageId as ID. So
// `aws sqs send-message --message-attributes '{"ce-id":...,"tenant":...}'`
// arrives with ID and a "tenant" header, and `aws sqs receive-message
// --message-attribute-names All` shows the attributes above.
//
// # Limits
//
// SNS publishes allow 256 KiB and SQS sends 1 MiB, counting the body and
// every attribute's name, data type and value. Capabilities.MaxMessageSize
// is (256 KiB - 8 KiB) * 3/4 = 190464 bytes of Message.Size: any message
// within it fits every path even with a base64 body or base64 headers
// (4/3 of their size) and the attribute overhead. Larger messages, and
// messages whose encoded form exceeds the path's limit (only possible
// with hundreds of tiny headers), fail with transport.ErrMessageTooLarge
// before any network call. MaxHeaders is 0: headers are not limited in
// number.
//
// # Batching
//
// Send sends up to 10 messages per SendMessageBatch and 9 per
// PublishBatch (within 1 MiB and 256 KiB per call), calls one after the
// other so that order is kept. (9, not 10: the query protocol sends
// entries as form fields sorted by name, member.1, member.10, member.2...,
// and fauxqs publishes them in that order.) Ack deletes with
// DeleteMessageBatch and Nack releases with ChangeMessageVisibilityBatch,
// 10 per call.
//
// # Receiving
//
// A subscription long-polls (WaitTimeSeconds = wait) for up to 10
// messages per call, never holding more than SubscribeOptions.MaxInFlight
// messages unacked (received and not yet acked or nacked). Standard
// queues are polled by one receiver by default, so that one consumer sees
// the queue's order: concurrent polls could hand out a later batch
// first. In FIFO mode ceil(MaxInFlight/10) receivers (at most 10) poll
// concurrently: the service itself never hands out a message of a group
// while an earlier one is in flight; a subscription marked
// SubscribeOptions.LowVolume (package messaging's delay queues) gets one.
// The receivers option overrides all of these.
//
// Visibility: messages are received with the visibility timeout given by
// the visibility parameter; while a message is held (buffered or being
// handled, for example while package messaging retries it in process) the
// adapter extends its visibility with ChangeMessageVisibilityBatch before
// half of it has run out. Nack sets visibility 0. Close waits for the
// polls under way (so that no message is taken by a poll nobody reads)
// and releases every held message with visibility 0, so the next consumer
// of the group gets it at once. An Ack whose receipt handle the broker no
// longer knows (after a restart) is ignored: the broker redelivers.
//
// Lost connections: when a connection is cut during a long poll, the
// service may still hand messages to that poll; they, and held messages
// whose Ack could not be sent, become visible again when their visibility
// timeout runs out (this is why the default is a short 10s, made safe by
// the extension above) and are then redelivered (at-least-once).
//
// # Ordering
//
// FIFO mode (fifo=true, the default of the sqs:// URL): FIFO topics and queues. MessageGroupId is the
// message key (hashed to "h-"+SHA-256 when it is longer than 128
// characters or not printable ASCII); messages without a key get a group
// per Send call ("sb-batch-"+the first message's ID), so one Send's keyless
// messages keep their order too. MessageDeduplicationId is the message ID
// and a nonce fixed for one Send call (hashed likewise): the SDK's retries
// of a call are deduplicated by the service, but a message sent again on
// purpose (a redriven dead letter) is delivered; deduplicating the
// application's duplicates is package dedup's job, as on every transport.
// OrderedByKey is true. Inboxes stay standard queues. The service keeps
// a message group locked to one receive while any of its messages is in
// flight, so one key's messages are handled one at a time and in order
// across all the members of a group (SEMANTICS.md R70-R72), while
// different keys spread across the members.
//
// Standard mode (fifo=false, opt in; the zero Options of New): SQS
// standard queues are best-effort ordered and may deliver twice;
// Capabilities.OrderedByKey is false. Package messaging serialises handlers
// per key within one member, but with several members one key's messages
// may run on two members at once and out of order: use it only for
// unkeyed traffic or a single member per group. The emulator keeps send
// order, and the adapter preserves it (one receiver, batches sent in
// order).
//
// # Errors and recovery
//
// Errors wrap the SDK's error and carry a transport sentinel:
// ErrNotFound (QueueDoesNotExist, SNS NotFound), ErrUnavailable
// (connection failures, 5xx, exhausted retries), ErrMessageTooLarge,
// ErrInvalid (rejected parameters), ErrClosed. Receive never returns
// broker errors: receivers back off (up to 2s) and retry, and when their
// queue is gone they declare it again (group: topic, queue, policy and
// subscription; queue; inbox), so that a subscription resumes by itself
// after an emulator restart. The fauxqs emulator holds everything in
// memory: after a restart, messages that were in it (queued or in
// flight) are lost, and so are messages published to a topic, or sent to
// a queue (ErrNotFound), before the subscription re-declared its queue
// (within a couple of seconds). Real SQS/SNS keep their state.
//
// # Escape hatches
//
// Transport.As accepts **sqs.Client and **sns.Client; a received
// message's As accepts *types.Message (sqs/types).
//
// # Admin
//
// transport.Admin (see messaging.Admin): DeleteGroup removes the topic's
// subscriptions to the group's queue and deletes the queue, DeleteQueue
// deletes a queue (AWS refuses a queue of the same name for 60 s after:
// QueueDeletedRecently), Purge is PurgeQueue (up to 60 s to complete, once
// per 60 s), Inspect reports ApproximateNumberOfMessages and, for a
// queue, its consumer leases (a group's consumers: -1). Peek is
// errors.ErrUnsupported: every ReceiveMessage raises
// ApproximateReceiveCount.
//
// Responders: SQS does not report consumers, so each consumer of a queue
// holds a lease on it, a queue tag "sb-consumer-<id>" whose value is its
// expiry in Unix milliseconds, written before Subscribe returns, renewed
// every Options.ConsumerLease/3 and removed on Close. The adapter
// implements transport.ConsumerCounter by counting the unexpired leases
// (ListQueueTags), so a request to a service nobody serves any more fails
// at once with messaging.ErrNoResponders; a responder whose process died
// counts until its lease expires (ConsumerLease, default 30s). A request
// sent while a responder counted, whose responders then all stopped,
// stays queued until a responder receives and drops it. Consumers need
// the sqs:TagQueue and sqs:UntagQueue permissions, requesters
// sqs:ListQueueTags.
//
// # Tests
//
// Tests use SWITCHBOARD_SQS_ENDPOINT when set, else start the fauxqs
// emulator pinned in testdata/emulator (package.json, package-lock.json,
// installed by testdata/emulator/install.sh with npm ci when node_modules
// is missing; fauxqs 1.9.2 runs on Node 20), with dummy static
// credentials.
package sqs
