package messaging

import (
	"context"

	"github.com/switchboard-go/switchboard/transport"
)

// Middleware wraps a Handler, for concerns that apply to every message of
// a subscription: deduplication, tracing, circuit breaking, decoding. It
// runs inside the retry loop: once per handler attempt. Returning nil
// without calling next acknowledges the message (a duplicate, say);
// blocking before calling next holds the message and, once the
// subscription's in-flight bound is reached, pauses fetching.
type Middleware func(next Handler) Handler

// WithMiddleware adds middleware to a subscription. The first one given
// is the outermost. Middleware set with WithSubscribeDefaults runs
// outside a subscription's own. A nil Middleware makes the subscribing
// call (or, given to WithSubscribeDefaults, Open and New) fail with
// ErrInvalid. Batch subscriptions (SubscribeBatch, ListenBatch) run no
// middleware: given to them directly, WithMiddleware is ErrInvalid; set
// with WithSubscribeDefaults, it applies to the client's other
// subscriptions only.
func WithMiddleware(mw ...Middleware) SubscribeOption {
	return func(o *subOptions) {
		for i, m := range mw {
			if m == nil && o.err == nil {
				o.err = invalid("WithMiddleware: middleware %d of %d is nil", i+1, len(mw))
			}
		}
		o.middleware = append(o.middleware, mw...)
	}
}

// SendFunc sends a batch of messages through the transport, as
// transport.Transport.Send does.
type SendFunc func(ctx context.Context, to transport.Address, msgs []*transport.Message) error

// SendMiddleware wraps every send of a client: publishes, notifications,
// requests, replies and dead letters. It may change the messages' Headers
// (replace the map, never modify it: it may be the caller's) and must not
// keep the messages after it returns. Use it for tracing, metrics and
// circuit breaking.
type SendMiddleware func(next SendFunc) SendFunc

// WithSendMiddleware adds send middleware to the client. The first one
// given is the outermost.
//
// A nil SendMiddleware makes Open and New fail with ErrInvalid.
func WithSendMiddleware(mw ...SendMiddleware) ClientOption {
	return func(o *clientOptions) {
		for i, m := range mw {
			if m == nil && o.err == nil {
				o.err = invalid("WithSendMiddleware: middleware %d of %d is nil", i+1, len(mw))
			}
		}
		o.sendMiddleware = append(o.sendMiddleware, mw...)
	}
}

func chainHandler(h Handler, mw []Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

func chainSend(s SendFunc, mw []SendMiddleware) SendFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		s = mw[i](s)
	}
	return s
}

type drainingKey struct{}

// Draining returns a channel that is closed when the subscription whose
// handler was given ctx starts shutting down, or nil (which blocks
// forever) for any other context. Middleware that waits before calling
// the handler, such as a paused circuit breaker, selects on it and returns
// an error, so that the message is released at once instead of at the
// drain deadline.
func Draining(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(drainingKey{}).(chan struct{})
	return ch
}
