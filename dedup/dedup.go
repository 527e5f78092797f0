// Package dedup makes message handling idempotent: a message delivered
// twice (published twice with the same ID, or redelivered by the broker
// after its acknowledgement was lost) is handled once.
//
// Install Middleware on a subscription with messaging.WithMiddleware. For
// every handler attempt it derives a key from the message (by default the
// source topic or queue and the message ID, see WithKey and WithNamespace)
// and asks a Store:
//
//   - Done (the key was handled within its retention): the message is
//     acknowledged without calling the handler.
//   - Claimed (the caller now holds a claim on the key for the lease): the
//     handler runs. On success the key is recorded as handled (Complete),
//     retained for the TTL; on error or panic the claim is released
//     (Release) and the error returned, so messaging retries or
//     dead-letters the message as usual.
//   - Busy (another consumer holds a live claim): the attempt fails with an
//     error matching ErrBusy, so messaging retries it later; by then the
//     other consumer has completed (Done: acknowledged) or released (the
//     retry claims it).
//
// Messages without an ID: a message from a producer that gives it no ID,
// on a broker that has no stable identity to fall back on (an AMQP message
// without message-id or cloudEvents_id), arrives with an empty ID. It
// cannot be told apart from another, so the middleware never
// deduplicates it, whatever the key function: the handler runs, the
// counter switchboard.dedup.unidentified is incremented, and the first
// such message is logged (once per middleware). See SEMANTICS.md, R84.
//
// Store errors fail closed by default: Begin's error is returned, so the
// message is retried and, if the store stays down, dead-lettered; it is
// never handled without a claim and never dropped. WithFailOpen(true)
// runs the handler without deduplication instead. A Complete that fails
// after the handler succeeded is logged and the message acknowledged: the
// work is done, and retrying it would run the handler again once the
// claim's lease lapses.
//
// The guarantee is exactly-once handling per key within the retention,
// provided the handler finishes within the lease: a claim that outlives
// its lease may be taken by another consumer. Choose a lease longer than
// the slowest handler, and a retry policy whose retries span more than the
// lease, so that a message redelivered after a consumer crashed (its claim
// still live until the lease lapses) is retried past the lease rather than
// dead-lettered as Busy.
//
// Stores: NewMemoryStore (one process, bounded, lazy expiry) and package
// dedup/redisdedup (shared by every consumer of a group).
package dedup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/switchboard-go/switchboard/messaging"
)

// State is the outcome of Store.Begin.
type State int

const (
	// Claimed: the caller now holds the claim on the key and should
	// handle the message.
	Claimed State = iota + 1
	// Busy: another consumer holds a live claim on the key.
	Busy
	// Done: the key was handled before, within its retention.
	Done
)

// String returns "claimed", "busy" or "done".
func (s State) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case Busy:
		return "busy"
	case Done:
		return "done"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Store remembers which messages were handled. Implementations must be
// safe for concurrent use; every consumer that must not handle a message
// twice shares one store (or the backend behind it).
type Store interface {
	// Begin claims key for the holder of token for at most lease. It
	// reports Done when key was handled before (within its retention),
	// Busy when another token holds a live claim, and Claimed when the
	// caller now holds it (a live claim by the same token is extended).
	Begin(ctx context.Context, key, token string, lease time.Duration) (State, error)
	// Complete records key as handled, retained for ttl, replacing any
	// claim.
	Complete(ctx context.Context, key string, ttl time.Duration) error
	// Release drops the claim on key if token holds it, after a failed
	// attempt; it does nothing otherwise.
	Release(ctx context.Context, key, token string) error
}

// ErrBusy is returned (wrapped) by the middleware when another consumer
// holds a live claim on the message's key. It is an ordinary, retryable
// handler error.
var ErrBusy = errors.New("dedup: message is being handled by another consumer")

// Defaults of the middleware's options.
const (
	DefaultLease     = time.Minute
	DefaultRetention = 24 * time.Hour
)

// storeTimeout bounds Complete and Release, which run even when the
// handler's context has ended.
const storeTimeout = 10 * time.Second

// Option configures Middleware.
type Option func(*options)

type options struct {
	key       func(*messaging.Message) string
	namespace string
	lease     time.Duration
	retention time.Duration
	failOpen  bool
	log       *slog.Logger
	meter     metric.MeterProvider

	unidentified metric.Int64Counter
	logOnce      *sync.Once
}

// WithKey sets the function that derives the deduplication key of a
// message. The default is the message's Topic (the topic, queue or service
// it was received from), ":", and its ID. An empty key means: do not
// deduplicate this message (the handler runs).
func WithKey(f func(*messaging.Message) string) Option {
	return func(o *options) { o.key = f }
}

// WithNamespace prefixes every key with ns and ":". Give each consumer
// group its own namespace when groups of one topic share a store:
// otherwise the first group to handle a message makes the others skip it.
func WithNamespace(ns string) Option {
	return func(o *options) { o.namespace = ns }
}

// WithLease sets how long a claim lives: the longest a handler call is
// expected to take. The default is DefaultLease.
func WithLease(d time.Duration) Option {
	return func(o *options) { o.lease = d }
}

// WithRetention sets how long a handled key is remembered: duplicates
// arriving later are handled again. The default is DefaultRetention.
func WithRetention(d time.Duration) Option {
	return func(o *options) { o.retention = d }
}

// WithFailOpen chooses what a failing Store.Begin does. Off (the
// default), the attempt fails with the store's error, so the message is
// retried (and dead-lettered if the store stays down): nothing is handled
// twice. On, the handler runs without deduplication and the error is
// logged: nothing waits for the store, at the risk of a duplicate.
func WithFailOpen(on bool) Option {
	return func(o *options) { o.failOpen = on }
}

// WithLogger sets the logger for store failures and skipped duplicates.
// The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithMeterProvider sets where the middleware's counter goes:
// switchboard.dedup.unidentified, the messages handled without
// deduplication because they carry no ID (attribute messaging.destination.name,
// the topic or queue). The default is OpenTelemetry's global provider
// (otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meter = mp }
}

func defaultKey(m *messaging.Message) string { return m.ReceivedFrom + ":" + m.ID }

// Middleware returns messaging middleware that handles each message key
// once, as the package documentation describes. It fails with an error
// matching messaging.ErrInvalid for a nil store, a nil key function or
// logger, or a lease or retention that is not positive.
//
// Install it inside a breaker.Handler (after it in WithMiddleware), so
// that a paused call holds no claim.
func Middleware(store Store, opts ...Option) (messaging.Middleware, error) {
	o := options{key: defaultKey, lease: DefaultLease, retention: DefaultRetention, log: slog.New(slog.DiscardHandler),
		meter: otel.GetMeterProvider(), logOnce: new(sync.Once)}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case store == nil:
		return nil, fmt.Errorf("%w: dedup: nil store", messaging.ErrInvalid)
	case o.key == nil:
		return nil, fmt.Errorf("%w: dedup: WithKey(nil)", messaging.ErrInvalid)
	case o.log == nil:
		return nil, fmt.Errorf("%w: dedup: WithLogger(nil)", messaging.ErrInvalid)
	case o.lease <= 0:
		return nil, fmt.Errorf("%w: dedup: lease is %s; it must be positive", messaging.ErrInvalid, o.lease)
	case o.retention <= 0:
		return nil, fmt.Errorf("%w: dedup: retention is %s; it must be positive", messaging.ErrInvalid, o.retention)
	case o.meter == nil:
		return nil, fmt.Errorf("%w: dedup: WithMeterProvider(nil)", messaging.ErrInvalid)
	}
	var err error
	o.unidentified, err = o.meter.Meter("github.com/switchboard-go/switchboard/dedup").Int64Counter("switchboard.dedup.unidentified",
		metric.WithUnit("{message}"), metric.WithDescription("Messages handled without deduplication because they carry no ID."))
	if err != nil {
		return nil, fmt.Errorf("dedup: counter: %w", err)
	}
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			return o.handle(ctx, store, next, m)
		}
	}, nil
}

func (o *options) handle(ctx context.Context, store Store, next messaging.Handler, m *messaging.Message) (err error) {
	if m.ID == "" {
		// No identity: never deduplicated, never dropped (R84).
		o.unidentified.Add(ctx, 1, metric.WithAttributes(attribute.String("messaging.destination.name", m.ReceivedFrom)))
		o.logOnce.Do(func() {
			o.log.Warn("dedup: a message without an ID is handled without deduplication (its producer sets no message-id); further ones are only counted", "topic", m.ReceivedFrom)
		})
		return next(ctx, m)
	}
	key := o.key(m)
	if key == "" {
		return next(ctx, m)
	}
	if o.namespace != "" {
		key = o.namespace + ":" + key
	}
	token := uuid.NewString()
	st, err := store.Begin(ctx, key, token, o.lease)
	if err != nil {
		if o.failOpen {
			o.log.Warn("dedup: store failed; handling without deduplication", "key", key, "id", m.ID, "error", err)
			return next(ctx, m)
		}
		return fmt.Errorf("dedup: claim %s: %w", key, err)
	}
	switch st {
	case Done:
		o.log.Debug("dedup: duplicate acknowledged without handling", "key", key, "id", m.ID, "attempt", m.Attempt)
		return nil
	case Busy:
		return fmt.Errorf("%w (key %s)", ErrBusy, key)
	case Claimed:
	default:
		return fmt.Errorf("dedup: claim %s: store returned %v", key, st)
	}

	handled := false
	defer func() {
		if handled {
			return
		}
		// Error or panic: drop the claim so that the retry (here or
		// elsewhere) can claim it at once.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		defer cancel()
		if rerr := store.Release(rctx, key, token); rerr != nil {
			o.log.Warn("dedup: release failed; the claim lapses after its lease", "key", key, "lease", o.lease, "error", rerr)
		}
	}()
	if err := next(ctx, m); err != nil {
		return err
	}
	handled = true
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if cerr := store.Complete(cctx, key, o.retention); cerr != nil {
		// The work is done: acknowledging is right. A duplicate arriving
		// after the claim lapses would be handled again.
		o.log.Error("dedup: could not record message as handled; a later duplicate may be handled again", "key", key, "id", m.ID, "error", cerr)
	}
	return nil
}
