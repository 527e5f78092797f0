package messaging

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/switchboard-go/switchboard/transport"
)

// BatchHandler handles a batch of messages: between 1 and the batch size
// (WithBatchSize) messages, never none, in the order received. Returning
// nil acknowledges every message of the batch. Returning an error that
// matches a *BatchError (errors.As) fails only the messages it names: the
// others are acknowledged. Any other error fails the whole batch. A
// failed message is retried per the subscription's RetryPolicy, its own
// Attempt one higher each time, and dead-lettered on its own after
// MaxAttempts, or at once if its error is marked with Permanent. A panic
// fails the whole batch. ctx is cancelled when the subscription's drain
// deadline passes during shutdown.
//
// msgs belongs to the handler until it returns; the failed messages come
// back together in a batch of their own after the backoff, never mixed
// with new messages.
type BatchHandler func(ctx context.Context, msgs []*Message) error

// DefaultBatchSize is the batch size of SubscribeBatch and ListenBatch
// when WithBatchSize is not given (or 0), capped at the subscription's
// MaxInFlight. It is the most messages one SQS ReceiveMessage returns.
const DefaultBatchSize = 10

// DefaultBatchWait is how long a batch of SubscribeBatch and ListenBatch
// waits to fill up when WithBatchWait is not given (or 0).
const DefaultBatchWait = 100 * time.Millisecond

// batchOptions are the options of a batch subscription.
type batchOptions struct {
	size    int           // 0: DefaultBatchSize, capped at MaxInFlight
	wait    time.Duration // 0: DefaultBatchWait
	handler BatchHandler  // set by SubscribeBatch and ListenBatch only
}

// WithBatchSize sets the most messages a BatchHandler gets at once, at
// least 1 and at most the subscription's MaxInFlight (WithMaxInFlight),
// else SubscribeBatch and ListenBatch fail with ErrInvalid. A batch is
// handed over as soon as it holds n messages. 0 means DefaultBatchSize (or
// MaxInFlight, if lower). Subscriptions with a Handler (Subscribe, Listen,
// Serve, Respond) ignore it, so it may be a client-wide default
// (WithSubscribeDefaults).
func WithBatchSize(n int) SubscribeOption {
	return func(o *subOptions) { o.batch.size = n }
}

// WithBatchWait sets how long a batch that is not full waits for more
// messages, from the arrival of its first message: when d has passed the
// batch is handed over as it is (never empty). d must not be negative
// (ErrInvalid); 0 means DefaultBatchWait. Subscriptions with a Handler
// ignore it.
func WithBatchWait(d time.Duration) SubscribeOption {
	return func(o *subOptions) { o.batch.wait = d }
}

// withBatchHandler makes the subscription a batch subscription.
func withBatchHandler(h BatchHandler) SubscribeOption {
	return func(o *subOptions) { o.batch.handler = h }
}

// validate checks the batch options of a batch subscription; it does
// nothing for other subscriptions.
func (b batchOptions) validate(maxInFlight int) error {
	if b.handler == nil {
		return nil
	}
	switch {
	case b.size < 0:
		return invalid("batch size is %d; it must be at least 1", b.size)
	case b.size > maxInFlight:
		return invalid("batch size %d is above max in flight %d; raise WithMaxInFlight", b.size, maxInFlight)
	case b.wait < 0:
		return invalid("batch wait is %s; it must not be negative", b.wait)
	}
	return nil
}

// withDefaults returns b with its zero fields set to the defaults.
func (b batchOptions) withDefaults(maxInFlight int) batchOptions {
	if b.size == 0 {
		b.size = min(DefaultBatchSize, maxInFlight)
	}
	if b.wait == 0 {
		b.wait = DefaultBatchWait
	}
	return b
}

// SubscribeBatch consumes topic as a member of group, as Subscribe does,
// handing the messages to h in batches: a batch is handed over when it
// holds WithBatchSize messages or when WithBatchWait has passed since its
// first message arrived, whichever comes first, and is never empty.
//
// Every delivery rule of Subscribe holds per message (SEMANTICS.md
// R125–R135): each message keeps its own attempt count, is retried, and is
// dead-lettered on its own with the usual failure envelope; per-key order
// holds within and across batches, because with key ordering on (the
// default) a batch holds at most one message of a key, and a key's next
// message joins a batch only once the one before it is acknowledged or
// dead-lettered. Turn key ordering off (WithKeyOrdering(false)) to batch
// messages of one key together. Batches are handled concurrently, up to
// MaxInFlight messages held in all (received and not yet settled, in
// batches or waiting to join one); set MaxInFlight to the batch size to
// handle one batch at a time. The messages of a batch that succeeded are
// acknowledged together, in one acknowledgement call to the broker (one
// DeleteMessageBatch per 10 on SQS, cumulative basic.acks on RabbitMQ,
// one offset commit on Kafka).
//
// Middleware is not applied to batch handlers: WithMiddleware given here
// is ErrInvalid. Options are validated as for Subscribe, and
// WithBatchSize above MaxInFlight is ErrInvalid.
func (c *Client) SubscribeBatch(ctx context.Context, topic, group string, h BatchHandler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validName("topic", topic); err != nil {
		return nil, err
	}
	if err := validName("group", group); err != nil {
		return nil, err
	}
	opts, err := withBatch(opts, h)
	if err != nil {
		return nil, err
	}
	return c.subscribe(ctx, transport.Topic(topic), group, topic, DeadLetterQueue(topic, group), batchOnly, opts, true)
}

// ListenBatch consumes the notifications sent to recipient, as Listen
// does, handing them to h in batches, as SubscribeBatch does.
func (c *Client) ListenBatch(ctx context.Context, recipient string, h BatchHandler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validName("recipient", recipient); err != nil {
		return nil, err
	}
	opts, err := withBatch(opts, h)
	if err != nil {
		return nil, err
	}
	return c.Listen(ctx, recipient, batchOnly, opts...)
}

// withBatch returns opts with the batch handler option last, without
// touching the caller's slice; a nil option is ErrInvalid, counted among
// the caller's options.
func withBatch(opts []SubscribeOption, h BatchHandler) ([]SubscribeOption, error) {
	if h == nil {
		return nil, invalid("nil batch handler")
	}
	var own subOptions
	for i, opt := range opts {
		if opt == nil {
			return nil, invalid("subscribe option %d of %d is nil", i+1, len(opts))
		}
		opt(&own)
	}
	if len(own.middleware) > 0 {
		// It would silently do nothing (a dedup.Middleware deduplicating
		// nothing): middleware wraps a single-message Handler.
		return nil, invalid("WithMiddleware is not applied to batch handlers; call what it does inside the BatchHandler")
	}
	return append(opts[:len(opts):len(opts)], withBatchHandler(h)), nil
}

// batchOnly is the Handler of a batch subscription: never called, since
// admit hands every message to the batcher.
func batchOnly(context.Context, *Message) error {
	return errors.New("switchboard: batch subscription called its single-message handler")
}

// BatchError is returned by a BatchHandler to fail only some messages of
// its batch: the messages it names are retried (or dead-lettered, each
// with its own error as the envelope's last error), the others are
// acknowledged. It may be wrapped (fmt.Errorf with %w): the subscription
// finds it with errors.As. A message it names that is not in the batch is
// ignored; a BatchError that names no message of the batch fails the
// whole batch, so that nothing is acknowledged by mistake.
//
// The zero value is ready to use:
//
//	var be messaging.BatchError
//	for _, m := range msgs {
//		if err := insert(ctx, m); err != nil {
//			be.Add(m, err)
//		}
//	}
//	return be.Err() // nil when nothing failed
type BatchError struct {
	// Failed lists the failed messages, as handed to the handler (the
	// same *Message), each with its error.
	Failed []MessageError
}

// MessageError is one failed message of a BatchError.
type MessageError struct {
	Message *Message
	// Err is the message's error; mark it with Permanent to dead-letter
	// the message at once. A nil Err counts as a failure too.
	Err error
}

// Add names m as failed with err.
func (e *BatchError) Add(m *Message, err error) {
	e.Failed = append(e.Failed, MessageError{Message: m, Err: err})
}

// Err returns e, or nil when e names no message.
func (e *BatchError) Err() error {
	if e == nil || len(e.Failed) == 0 {
		return nil
	}
	return e
}

// Error lists the first three failures: "switchboard: 2 messages of the
// batch failed: <id>: <error>; <id>: <error>".
func (e *BatchError) Error() string {
	if e == nil {
		return "switchboard: nil *BatchError"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "switchboard: %d messages of the batch failed", len(e.Failed))
	for i, f := range e.Failed {
		if i == 3 {
			b.WriteString("; ...")
			break
		}
		sep := ": "
		if i > 0 {
			sep = "; "
		}
		id := "<nil message>"
		if f.Message != nil {
			id = f.Message.ID
		}
		fmt.Fprintf(&b, "%s%s: %s", sep, id, errText(f.Err))
	}
	return b.String()
}

// Unwrap returns the messages' errors, for errors.Is and errors.As.
func (e *BatchError) Unwrap() []error {
	if e == nil {
		return nil
	}
	out := make([]error, 0, len(e.Failed))
	for _, f := range e.Failed {
		if f.Err != nil {
			out = append(out, f.Err)
		}
	}
	return out
}

// errNamedFailed is the error of a message a BatchError named with a nil
// Err.
var errNamedFailed = errors.New("switchboard: named as failed in a BatchError")

func errText(err error) string {
	if err == nil {
		return errNamedFailed.Error()
	}
	return err.Error()
}

// batchItem is one message of a batch being handled.
type batchItem struct {
	tm      *transport.Message
	m       *Message // as handed to the handler's last call
	attempt int
	first   time.Time // first failure
	err     error     // last failure
}

// handleBatch handles one batch until every message of it is settled (or
// released at shutdown): it calls the handler, acknowledges what
// succeeded, dead-letters what used its attempts up, and calls the handler
// again with the rest after the backoff. It runs on its own goroutine,
// counted in s.handlers.
func (b *batcher) handleBatch(tms []*transport.Message) {
	s := b.s
	defer s.handlers.Done()
	items := make([]*batchItem, 0, len(tms))
	for _, tm := range tms {
		attempt, looping := s.firstAttempt(tm)
		if looping {
			now := time.Now()
			s.deadLetter(tm, &crashLoopError{deliveries: tm.DeliveryCount, maxAttempts: s.o.retry.MaxAttempts}, tm.DeliveryCount-1, now, now)
			b.next(tm)
			continue
		}
		items = append(items, &batchItem{tm: tm, attempt: attempt})
	}
	var bo *backoff.ExponentialBackOff
	for len(items) > 0 {
		if s.draining.Load() {
			b.releaseAll(items)
			return
		}
		err := b.call(items)
		if err == nil {
			b.ack(items)
			return
		}
		now := time.Now()
		failed := b.failures(items, err)
		var ok, retry []*batchItem
		for _, it := range items {
			ferr, isFailed := failed[it]
			if !isFailed {
				ok = append(ok, it)
				continue
			}
			if it.first.IsZero() {
				it.first = now
			}
			it.err = ferr
			retry = append(retry, it)
		}
		b.ack(ok)
		items = items[:0]
		for _, it := range retry {
			switch {
			case s.draining.Load() && !IsPermanent(it.err):
				// Shutting down: the failure may be the shutdown's
				// doing; the message's next consumer tries again.
				s.release(it.tm)
			case IsPermanent(it.err) || it.attempt >= s.o.retry.MaxAttempts:
				s.deadLetter(it.tm, it.err, it.attempt, it.first, now)
				b.next(it.tm)
			default:
				items = append(items, it)
			}
		}
		if len(items) == 0 {
			return
		}
		if bo == nil {
			bo = s.newBackoff()
		}
		wait := bo.NextBackOff()
		s.c.tel.count(s.c.tel.retried, s.sm, int64(len(items)))
		s.log.Debug("switchboard: batch handler failed; will retry", "messages", len(items), "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.drainCh:
			t.Stop()
			b.releaseAll(items)
			return
		}
		for _, it := range items {
			it.attempt++
		}
	}
}

// call runs the handler once on items, turning a panic into an error.
func (b *batcher) call(items []*batchItem) (err error) {
	s := b.s
	msgs := make([]*Message, len(items))
	for i, it := range items {
		m := fromTransport(it.tm, s.source)
		m.Attempt = it.attempt
		it.m = m
		msgs[i] = m
	}
	ctx, span := s.c.tel.startBatchProcess(s.handlerCtx, s, items)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("switchboard: batch handler panicked: %v\n%s", r, debug.Stack())
		}
		s.c.tel.handlerDuration(s.sm, time.Since(start), err)
		endSpan(span, err)
	}()
	return b.h(ctx, msgs)
}

// failures returns the failed items of a call that returned err, each
// with its error: those a *BatchError names, else every item.
func (b *batcher) failures(items []*batchItem, err error) map[*batchItem]error {
	failed := make(map[*batchItem]error, len(items))
	var be *BatchError
	if errors.As(err, &be) && be != nil {
		byMsg := make(map[*Message]*batchItem, len(items))
		for _, it := range items {
			byMsg[it.m] = it
		}
		for _, f := range be.Failed {
			it := byMsg[f.Message]
			if it == nil {
				b.s.log.Warn("switchboard: BatchError names a message that is not in the batch; ignored")
				continue
			}
			ferr := f.Err
			if ferr == nil {
				ferr = errNamedFailed
			}
			failed[it] = ferr
		}
		if len(failed) > 0 {
			return failed
		}
		// It names none of the batch: the whole batch failed, for the
		// error's text only, not for the errors of the messages it
		// names (one of them marked Permanent must not dead-letter the
		// batch).
		err = &unnamedBatchError{text: err.Error()}
	}
	for _, it := range items {
		failed[it] = err
	}
	return failed
}

// unnamedBatchError is the failure of a batch whose handler returned a
// *BatchError naming none of the batch's messages: its text, and nothing
// for errors.Is or errors.As to find (R129).
type unnamedBatchError struct{ text string }

func (e *unnamedBatchError) Error() string { return e.text }

// ack acknowledges items in one acknowledgement call, frees their slots
// and lets their keys go on.
func (b *batcher) ack(items []*batchItem) {
	if len(items) == 0 {
		return
	}
	s := b.s
	ids := make([]any, len(items))
	for i, it := range items {
		ids[i] = it.tm.AckID
	}
	s.acks.addAll(ids)
	s.c.tel.count(s.c.tel.acked, s.sm, int64(len(items)))
	s.c.tel.flight(s.sm, -int64(len(items)))
	for range items {
		s.room.give()
	}
	for _, it := range items {
		b.next(it.tm)
	}
}

// releaseAll releases items at shutdown.
func (b *batcher) releaseAll(items []*batchItem) {
	for _, it := range items {
		b.s.release(it.tm)
	}
}

// addAll queues acknowledgements for one transport call: the acker sends
// whatever accumulated while its previous call was in progress in one
// call, so ids added together are acknowledged together.
func (a *acker) addAll(ids []any) {
	a.mu.Lock()
	if a.shut {
		a.mu.Unlock()
		return // the broker redelivers them: at-least-once
	}
	a.acks = append(a.acks, ids...)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}
