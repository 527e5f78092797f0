package messaging

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// RetryPolicy says how often, and how far apart, a failing handler is
// called again before its message is dead-lettered. The waits grow
// exponentially from InitialBackoff by Multiplier up to MaxBackoff, each
// randomised by ±Jitter.
//
// Given to WithRetry, a zero MaxAttempts, InitialBackoff, MaxBackoff or
// Multiplier takes DefaultRetryPolicy's value (MaxBackoff at least
// InitialBackoff), so RetryPolicy{MaxAttempts: 3} is the default policy
// with 3 attempts; a zero Jitter means no jitter. Negative values and the
// contradictions below are ErrInvalid.
type RetryPolicy struct {
	// MaxAttempts is the number of handler calls a message gets, the
	// first included, before it is dead-lettered. At least 1; 0 means 5.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry. Positive; 0
	// means 100ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait between retries. At least InitialBackoff;
	// 0 means 10s (or InitialBackoff, if longer).
	MaxBackoff time.Duration
	// Multiplier grows the wait after each retry. At least 1; 0 means 2.
	Multiplier float64
	// Jitter randomises each wait by up to this fraction, 0 (none) to 1.
	Jitter float64
}

// DefaultRetryPolicy is used when no policy is given: 5 attempts, waits
// of 100ms, 200ms, 400ms, 800ms (±20%).
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:    5,
	InitialBackoff: 100 * time.Millisecond,
	MaxBackoff:     10 * time.Second,
	Multiplier:     2,
	Jitter:         0.2,
}

func (p RetryPolicy) validate() error {
	switch {
	case p.MaxAttempts < 1:
		return invalid("retry policy: MaxAttempts is %d; it must be at least 1", p.MaxAttempts)
	case p.InitialBackoff <= 0:
		return invalid("retry policy: InitialBackoff is %s; it must be positive", p.InitialBackoff)
	case p.MaxBackoff < p.InitialBackoff:
		return invalid("retry policy: MaxBackoff %s is below InitialBackoff %s", p.MaxBackoff, p.InitialBackoff)
	case p.Multiplier < 1:
		return invalid("retry policy: Multiplier is %g; it must be at least 1", p.Multiplier)
	case p.Jitter < 0 || p.Jitter > 1:
		return invalid("retry policy: Jitter is %g; it must be between 0 and 1", p.Jitter)
	}
	return nil
}

// ClientOption configures a Client.
type ClientOption func(*clientOptions)

type clientOptions struct {
	logger         *slog.Logger
	drainTimeout   time.Duration
	requestTimeout time.Duration
	subDefaults    []SubscribeOption
	sendMiddleware []SendMiddleware
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator
	source         string // CloudEvents source (source.go)
	sourceSet      bool
	err            error // the first bad option (a nil function)
}

// WithLogger sets the logger the client and its subscriptions log to. The
// default discards everything.
func WithLogger(l *slog.Logger) ClientOption {
	return func(o *clientOptions) { o.logger = l }
}

// WithDrainTimeout sets how long Close lets in-flight handlers finish
// before it cancels their contexts. The default is 30 seconds.
func WithDrainTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.drainTimeout = d }
}

// WithRequestTimeout sets the deadline of requests and gathers whose
// context has none. The default is 30 seconds.
func WithRequestTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.requestTimeout = d }
}

// WithSubscribeDefaults sets options applied to every subscription of the
// client before the subscription's own options.
func WithSubscribeDefaults(opts ...SubscribeOption) ClientOption {
	return func(o *clientOptions) { o.subDefaults = append(o.subDefaults, opts...) }
}

func (o *clientOptions) validate() error {
	switch {
	case o.err != nil:
		return o.err
	case o.logger == nil:
		return invalid("WithLogger(nil)")
	case o.drainTimeout <= 0:
		return invalid("drain timeout is %s; it must be positive", o.drainTimeout)
	case o.requestTimeout <= 0:
		return invalid("request timeout is %s; it must be positive", o.requestTimeout)
	}
	return nil
}

// SubscribeOption configures a subscription (Subscribe, Listen, Serve,
// Respond).
type SubscribeOption func(*subOptions)

type subOptions struct {
	retry       RetryPolicy
	maxInFlight int
	deadLetter  string
	keyOrdering bool
	middleware  []Middleware
	batch       batchOptions // SubscribeBatch and ListenBatch (batch.go)
	err         error        // the first bad option (a nil function)
}

// WithRetry sets the retry policy of the subscription's handler; zero
// fields take DefaultRetryPolicy's values (see RetryPolicy).
func WithRetry(p RetryPolicy) SubscribeOption {
	return func(o *subOptions) { o.retry = p.withDefaults() }
}

// WithMaxAttempts sets RetryPolicy.MaxAttempts, keeping the other fields.
func WithMaxAttempts(n int) SubscribeOption {
	return func(o *subOptions) { o.retry.MaxAttempts = n }
}

// WithMaxInFlight bounds how many messages the subscription holds at once,
// received but not yet acknowledged: handlers running, waiting to retry,
// or queued behind an earlier message of the same key. When the bound is
// reached the subscription stops fetching (backpressure). The default is
// 64. Handlers run on up to n goroutines, started as messages arrive; one
// that has waited 1 s for a message stops, so an idle subscription keeps
// two goroutines (its receive loop and its acknowledger).
func WithMaxInFlight(n int) SubscribeOption {
	return func(o *subOptions) { o.maxInFlight = n }
}

// WithDeadLetterQueue names the queue that receives the subscription's
// dead letters, instead of the default from DeadLetterQueue.
func WithDeadLetterQueue(name string) SubscribeOption {
	return func(o *subOptions) { o.deadLetter = name }
}

// WithKeyOrdering turns per-key ordering on (the default) or off. On,
// messages with the same non-empty key are handled one at a time in the
// order received, while different keys are handled concurrently. Off,
// every message is handled as soon as it arrives.
func WithKeyOrdering(on bool) SubscribeOption {
	return func(o *subOptions) { o.keyOrdering = on }
}

func (o *subOptions) validate() error {
	if o.err != nil {
		return o.err
	}
	if o.maxInFlight < 1 {
		return invalid("max in flight is %d; it must be at least 1", o.maxInFlight)
	}
	if o.deadLetter != "" {
		if err := validName("dead-letter queue", o.deadLetter); err != nil {
			return err
		}
	}
	if err := o.batch.validate(o.maxInFlight); err != nil {
		return err
	}
	return o.retry.validate()
}
