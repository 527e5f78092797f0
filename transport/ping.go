package transport

import "context"

// Pinger is implemented by transports that can check, on demand, that
// their broker answers. Every adapter of this module implements it;
// package messaging's Client.Ping uses it (see there for what a nil error
// means per broker).
//
// Ping makes at most one round trip to the broker, bounded by ctx, and
// never creates or changes anything on it. It returns nil when the broker
// answered, an error matching ErrClosed after Close, an error matching
// ErrUnavailable when the broker cannot be reached now (including while
// the adapter is reconnecting), and an error matching ErrUnauthorized or
// ErrTLS when the broker refuses the client's credentials or certificate.
type Pinger interface {
	Ping(ctx context.Context) error
}
