// Package breaker puts circuit breakers (github.com/sony/gobreaker/v2) on
// a client's sends and on a subscription's handler.
//
// A breaker is closed while calls succeed. After Failures consecutive
// failures it opens; after OpenTimeout it lets HalfOpenProbes calls
// through (half-open); if that many succeed in a row it closes, and if
// one fails it opens again for another OpenTimeout.
//
// On sends (Send, installed with messaging.WithSendMiddleware) an open
// breaker fails every send at once with an error matching ErrOpen (and
// messaging.ErrUnavailable, and gobreaker's ErrOpenState or
// ErrTooManyRequests), without calling the broker. Only broker failures
// count: errors matching messaging.ErrInvalid, messaging.ErrMessageTooLarge
// or transport.ErrNotFound mean the broker answered and count as
// successes; a context.Canceled outcome is not counted (or, while
// half-open, counts as a failure, so that the probe slot is not lost). A
// deadline that passes (context.DeadlineExceeded) is a failure: a broker
// too slow to answer is failing.
//
// On handlers (Handler, installed with messaging.WithMiddleware) an open
// breaker pauses instead of failing: the call blocks, honouring its
// context, until the breaker lets it through as a probe or closes, so no
// retry attempt is spent and nothing is dead-lettered while the
// dependency is down. A paused call holds its message and its in-flight
// slot; once every slot is held the subscription stops fetching, so
// consumption pauses. Errors marked messaging.Permanent and dedup.ErrBusy
// count as successes (the handler's dependencies answered); a
// context.Canceled outcome is treated as on sends.
//
// Shutdown: a call paused when its subscription starts shutting down
// (messaging.Draining) returns at once, and its message is released back
// to the broker, unhandled and unacknowledged.
//
// Every function returned by one Send or Handler call shares one breaker:
// install one Handler breaker on several subscriptions and they pause
// together.
package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// State is a breaker's state: StateClosed, StateHalfOpen or StateOpen.
type State = gobreaker.State

// States of a breaker.
const (
	StateClosed   = gobreaker.StateClosed
	StateHalfOpen = gobreaker.StateHalfOpen
	StateOpen     = gobreaker.StateOpen
)

// ErrOpen is matched (errors.Is) by the errors of calls an open or
// half-open breaker refused.
var ErrOpen = errors.New("breaker: circuit open")

// OpenError is the error of a call an open (or half-open and already
// probing) breaker refused. It matches ErrOpen and
// messaging.ErrUnavailable, and unwraps to gobreaker.ErrOpenState or
// gobreaker.ErrTooManyRequests.
type OpenError struct {
	// Name is the breaker's name (WithName).
	Name string
	// Err is gobreaker's error: ErrOpenState or ErrTooManyRequests.
	Err error
}

// Error returns "breaker <name>: circuit open: <gobreaker's error>".
func (e *OpenError) Error() string {
	return fmt.Sprintf("breaker %s: circuit open: %v", e.Name, e.Err)
}

// Is makes errors.Is(err, ErrOpen) and errors.Is(err,
// messaging.ErrUnavailable) true.
func (e *OpenError) Is(target error) bool {
	return target == ErrOpen || target == messaging.ErrUnavailable
}

// Unwrap returns gobreaker's error.
func (e *OpenError) Unwrap() error { return e.Err }

// Defaults of the options.
const (
	DefaultFailures       = 5
	DefaultOpenTimeout    = 30 * time.Second
	DefaultHalfOpenProbes = 1
)

// Option configures a breaker.
type Option func(*options)

type options struct {
	name        string
	failures    int
	openTimeout time.Duration
	probes      int
	isFailure   func(error) bool
	onChange    func(name string, from, to State)
	log         *slog.Logger
}

// WithName names the breaker, in logs, callbacks and errors. The default
// is "send" or "handler".
func WithName(name string) Option { return func(o *options) { o.name = name } }

// WithFailures sets how many consecutive failures open the breaker. At
// least 1; the default is DefaultFailures.
func WithFailures(n int) Option { return func(o *options) { o.failures = n } }

// WithOpenTimeout sets how long the breaker stays open before it lets
// probes through. Positive; the default is DefaultOpenTimeout.
func WithOpenTimeout(d time.Duration) Option { return func(o *options) { o.openTimeout = d } }

// WithHalfOpenProbes sets how many calls the half-open breaker lets
// through, all of which must succeed (in a row) to close it. At least 1;
// the default is DefaultHalfOpenProbes.
func WithHalfOpenProbes(n int) Option { return func(o *options) { o.probes = n } }

// WithIsFailure replaces the rule that decides whether a call's non-nil
// error is a failure. An error for which f reports false counts as a
// success. context.Canceled outcomes are never passed to f.
func WithIsFailure(f func(error) bool) Option { return func(o *options) { o.isFailure = f } }

// WithOnStateChange sets a function called on every state change. It is
// called while the breaker is locked: it must be quick and must not block.
func WithOnStateChange(f func(name string, from, to State)) Option {
	return func(o *options) { o.onChange = f }
}

// WithLogger sets the logger state changes are logged to: opening as a
// warning, half-opening and closing as information. The default discards
// everything.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

func newOptions(name string, isFailure func(error) bool, opts []Option) (options, error) {
	o := options{
		name:        name,
		failures:    DefaultFailures,
		openTimeout: DefaultOpenTimeout,
		probes:      DefaultHalfOpenProbes,
		isFailure:   isFailure,
		log:         slog.New(slog.DiscardHandler),
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.failures < 1:
		return o, fmt.Errorf("%w: breaker: failures to trip is %d; it must be at least 1", messaging.ErrInvalid, o.failures)
	case o.openTimeout <= 0:
		return o, fmt.Errorf("%w: breaker: open timeout is %s; it must be positive", messaging.ErrInvalid, o.openTimeout)
	case o.probes < 1:
		return o, fmt.Errorf("%w: breaker: half-open probes is %d; it must be at least 1", messaging.ErrInvalid, o.probes)
	case o.isFailure == nil:
		return o, fmt.Errorf("%w: breaker: WithIsFailure(nil)", messaging.ErrInvalid)
	case o.log == nil:
		return o, fmt.Errorf("%w: breaker: WithLogger(nil)", messaging.ErrInvalid)
	}
	return o, nil
}

// cb is a two-step gobreaker with a broadcast of its state changes.
type cb struct {
	o  options
	gb *gobreaker.TwoStepCircuitBreaker[struct{}]

	mu        sync.Mutex
	changed   chan struct{} // closed, and replaced, on every state change or finished call
	openUntil time.Time
}

func newCB(o options) *cb {
	b := &cb{o: o, changed: make(chan struct{})}
	b.gb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        o.name,
		MaxRequests: uint32(o.probes),
		Timeout:     o.openTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= uint32(o.failures)
		},
		OnStateChange: b.stateChanged,
	})
	return b
}

// stateChanged runs under gobreaker's lock.
func (b *cb) stateChanged(name string, from, to State) {
	b.mu.Lock()
	if to == StateOpen {
		b.openUntil = time.Now().Add(b.o.openTimeout)
	}
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	level := slog.LevelInfo
	if to == StateOpen {
		level = slog.LevelWarn
	}
	b.o.log.Log(context.Background(), level, "breaker: state changed", "breaker", name, "from", from.String(), "to", to.String())
	if b.o.onChange != nil {
		b.o.onChange(name, from, to)
	}
}

// wake wakes the callers waiting for a change.
func (b *cb) wake() {
	b.mu.Lock()
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
}

// finish reports a call's outcome.
func (b *cb) finish(done func(bool), ctx context.Context, err error) {
	switch {
	case err == nil:
		done(true)
	case errors.Is(err, context.Canceled):
		// The caller gave up: the outcome says nothing of the broker.
		// A half-open probe must still be accounted for, or the
		// breaker would wait for it forever; count it as a failure.
		if b.gb.State() == StateHalfOpen {
			done(false)
		}
	default:
		done(!b.o.isFailure(err))
	}
}

// isSendFailure is the default failure rule of Send.
func isSendFailure(err error) bool {
	return !errors.Is(err, messaging.ErrInvalid) &&
		!errors.Is(err, messaging.ErrMessageTooLarge) &&
		!errors.Is(err, transport.ErrNotFound)
}

// isHandlerFailure is the default failure rule of Handler.
func isHandlerFailure(err error) bool {
	return !messaging.IsPermanent(err) && !errors.Is(err, dedup.ErrBusy)
}

// Send returns send middleware with a breaker that fails sends fast while
// the broker keeps failing, as the package documentation describes. It
// fails with an error matching messaging.ErrInvalid for invalid options.
func Send(opts ...Option) (messaging.SendMiddleware, error) {
	o, err := newOptions("send", isSendFailure, opts)
	if err != nil {
		return nil, err
	}
	b := newCB(o)
	return func(next messaging.SendFunc) messaging.SendFunc {
		return func(ctx context.Context, to transport.Address, msgs []*transport.Message) (err error) {
			done, aerr := b.gb.Allow()
			if aerr != nil {
				return &OpenError{Name: o.name, Err: aerr}
			}
			finished := false
			defer func() {
				if !finished { // panic
					done(false)
				}
			}()
			err = next(ctx, to, msgs)
			finished = true
			b.finish(done, ctx, err)
			return err
		}
	}, nil
}

// Handler returns handler middleware with a breaker that pauses handling
// while the handler keeps failing, as the package documentation
// describes. It fails with an error matching messaging.ErrInvalid for
// invalid options.
//
// Install it before (outside) dedup.Middleware, so that a paused call
// holds no deduplication claim.
func Handler(opts ...Option) (messaging.Middleware, error) {
	o, err := newOptions("handler", isHandlerFailure, opts)
	if err != nil {
		return nil, err
	}
	b := newCB(o)
	return func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			return b.handle(ctx, next, m)
		}
	}, nil
}

func (b *cb) handle(ctx context.Context, next messaging.Handler, m *messaging.Message) error {
	for {
		b.mu.Lock()
		changed, until := b.changed, b.openUntil
		b.mu.Unlock()
		done, aerr := b.gb.Allow()
		if aerr == nil {
			return b.run(ctx, done, next, m)
		}
		// Open: wait for the timeout to pass. Half-open with every probe
		// slot taken: wait for a probe to finish.
		var timer *time.Timer
		var expired <-chan time.Time
		if errors.Is(aerr, gobreaker.ErrOpenState) {
			timer = time.NewTimer(max(time.Until(until), time.Millisecond))
			expired = timer.C
		}
		select {
		case <-changed:
		case <-expired:
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return fmt.Errorf("%w: paused: %w", &OpenError{Name: b.o.name, Err: aerr}, ctx.Err())
		case <-messaging.Draining(ctx):
			// The subscription is shutting down: give the message back
			// now rather than at the drain deadline.
			if timer != nil {
				timer.Stop()
			}
			return fmt.Errorf("%w: paused at shutdown", &OpenError{Name: b.o.name, Err: aerr})
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (b *cb) run(ctx context.Context, done func(bool), next messaging.Handler, m *messaging.Message) (err error) {
	finished := false
	defer func() {
		if !finished { // panic
			done(false)
		}
		b.wake()
	}()
	err = next(ctx, m)
	finished = true
	b.finish(done, ctx, err)
	return err
}
