// Package messaging is Switchboard's API: one Client that gives a service
// every asynchronous messaging pattern with the same behaviour on every
// broker. The broker is chosen by URL, at deploy time:
//
//	c, err := messaging.Open(ctx, "amqp://user:pass@rabbit:5672/") // or kafka://, sqs://, mem://
//	c, err := messaging.OpenFromEnv(ctx)                          // $SWITCHBOARD_URL, else mem://
//	defer c.Close()                                               // drains, then disconnects
//
// Import the adapter of each scheme you use (package kafka, rabbitmq or
// sqs) for its side effect of registering it; mem:// (package inmem) is
// always there. Package transport is the contract the adapters implement;
// services do not use it.
//
// # The five patterns
//
// Publish/subscribe with consumer groups. Publish sends to a topic; every
// consumer group declared on the topic (by Subscribe) gets every message
// published after it was declared, durably, and the members of one group
// share them:
//
//	c.Publish(ctx, "orders", &messaging.Message{Key: "customer-42", Body: b})
//	c.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m *messaging.Message) error { ... })
//
// Notifications. Notify sends to one recipient, whose queue holds the
// messages until it listens, even if it never listened before:
//
//	c.Notify(ctx, "mailer", msg)
//	c.Listen(ctx, "mailer", handler)
//
// Request with synchronous response. Request sends to a service and waits
// for the reply of one of its responders (Serve); a responder's error
// comes back as a *RemoteError, no responder as ErrNoResponders, no reply
// in time as ErrTimeout:
//
//	c.Serve(ctx, "prices", func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) { ... })
//	reply, err := c.Request(ctx, "prices", req)
//
// Request with asynchronous response. RequestAsync returns a Future at
// once (Wait, Done, Cancel), or calls an OnReply function; many requests
// may be outstanding, each reply matched by correlation ID:
//
//	f, err := c.RequestAsync(ctx, "stock", req, messaging.OnReply(func(reply *messaging.Message, err error) { ... }))
//
// Publish with asynchronous responses (scatter-gather). Gather publishes a
// request to a topic and collects one reply per responding group
// (Respond), until WantReplies replies arrived or GatherTimeout passed:
//
//	c.Respond(ctx, "quotes", "dhl", quoteHandler)
//	g, err := c.Gather(ctx, "quotes", req, messaging.WantReplies(3), messaging.GatherTimeout(2*time.Second))
//
// # Delivery
//
// Delivery is at-least-once: a handler's message is acknowledged when the
// handler returns nil. An error retries it with backoff (WithRetry,
// DefaultRetryPolicy); after RetryPolicy.MaxAttempts calls, or at once for
// an error marked Permanent, it goes to its dead-letter queue
// (DeadLetterQueue) with a failure envelope (ParseDeadLetter). Messages
// with the same Key are handled one at a time, in order; WithMaxInFlight
// bounds what a subscription holds. A handler may see a message twice
// (after a crash or a lost acknowledgement): make it idempotent, or use
// package dedup. Close or Shutdown stops consuming gracefully; the context
// given to Subscribe, Listen, Serve and Respond bounds only that call.
//
// Batch handlers. SubscribeBatch and ListenBatch hand messages to a
// BatchHandler in batches of up to WithBatchSize, handed over when full or
// when WithBatchWait has passed, never empty; nil acknowledges the batch,
// an error retries it, and a *BatchError retries only the messages it
// names. Every delivery rule above holds per message:
//
//	c.SubscribeBatch(ctx, "readings", "warehouse", func(ctx context.Context, msgs []*messaging.Message) error { ... },
//		messaging.WithBatchSize(100), messaging.WithBatchWait(50*time.Millisecond), messaging.WithMaxInFlight(200))
//
// # Around the patterns
//
// Message.ReceivedFrom tells a handler where a message came from: the topic,
// the recipient's queue or the service. Message.As and Client.As reach the
// broker's native types. Package codec's Router and codecs decode typed
// messages and upgrade old versions; WithSendMiddleware and WithMiddleware wrap sends
// and handlers (package breaker adds circuit breakers);
// WithTracerProvider and WithMeterProvider turn on OpenTelemetry.
// Client.Admin inspects, peeks at, purges and deletes consumer groups and
// queues, dead-letter queues included.
//
// Errors are sentinel values tested with errors.Is (ErrInvalid for bad
// input, before anything is sent; ErrClosed, ErrNoResponders, ErrTimeout,
// ErrNotFound, ErrMessageTooLarge, ErrUnavailable) and *RemoteError,
// tested with errors.As. Broker errors are wrapped, never hidden.
//
// Every rule above, and the finer ones, is numbered in SEMANTICS.md at the
// root of the module and proven on every transport by package conformance.
package messaging
