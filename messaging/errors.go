package messaging

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-go/switchboard/transport"
)

// Errors returned by this package. Test them with errors.Is; broker errors
// are wrapped, never hidden, so errors.As reaches the native error too.
var (
	// ErrClosed is returned by every call on a closed Client or
	// Subscription.
	ErrClosed = transport.ErrClosed
	// ErrInvalid is returned for bad input: an empty or malformed name, a
	// nil handler, a reserved header, a bad option or URL.
	ErrInvalid = transport.ErrInvalid
	// ErrMessageTooLarge is returned, before any network call, for a
	// message over the transport's size or header limits.
	ErrMessageTooLarge = transport.ErrMessageTooLarge
	// ErrUnavailable is returned when the broker cannot be reached.
	ErrUnavailable = transport.ErrUnavailable
	// ErrNoResponders is returned by Request and RequestAsync when no
	// responder has ever served the service, or when none serves it now
	// (its request queue has no consumer: see transport.ConsumerCounter);
	// nothing was sent.
	ErrNoResponders = errors.New("switchboard: no responders")
	// ErrTimeout is returned when a request's deadline passes before its
	// reply arrives, and by Gather when fewer replies than wanted arrived
	// in time. It also matches context.DeadlineExceeded.
	ErrTimeout error = timeoutError{}
)

type timeoutError struct{}

func (timeoutError) Error() string { return "switchboard: timeout" }

// Is makes errors.Is(ErrTimeout, context.DeadlineExceeded) true.
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Timeout reports true, for callers that test net.Error-style timeouts.
func (timeoutError) Timeout() bool { return true }

// RemoteError is a responder's error carried back to the requester. A
// ReplyHandler that returns an error makes Request return a *RemoteError.
type RemoteError struct {
	// Service is the service or topic the request was sent to.
	Service string
	// Message is the responder's error text.
	Message string
	// Code is the responder's error code, set with WithCode; empty if none.
	Code string
	// Responder is who returned the error: the consumer group of the
	// Respond (in a Gather), or the service of the Serve (see
	// Message.Responder); empty when the responder did not say.
	Responder string
}

// Error returns "switchboard: responder of <service>: <message>".
func (e *RemoteError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("switchboard: responder of %s: [%s] %s", e.Service, e.Code, e.Message)
	}
	return fmt.Sprintf("switchboard: responder of %s: %s", e.Service, e.Message)
}

// codedError carries an error code to the requester.
type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// WithCode attaches a machine-readable code to a responder's error; the
// requester finds it in RemoteError.Code.
func WithCode(err error, code string) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks a handler error as permanent: the message is
// dead-lettered at once, without retries. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}

// wrapOp wraps the error of a transport call, following transport's error
// text convention: "switchboard: <op> <what>: <adapter's error>", where
// what (naming the destination, name within it) is left out when the
// adapter's text already names name, and "switchboard: " is printed once
// (transport.Layer).
func wrapOp(err error, op, what, name string) error {
	if err == nil {
		return nil
	}
	if what != "" && !transport.Names(err, name) {
		op += " " + what
	} else {
		// "send request to", "declare queue of recipient": without their
		// object ("send request", "declare queue").
		op = strings.TrimSuffix(strings.TrimSuffix(op, " to"), " of recipient")
	}
	return transport.Layer(err, "switchboard: "+op)
}

// noResponders is ErrNoResponders for a request to service that err (the
// transport's) says could not be delivered: the service is named unless
// err names it already.
func noResponders(err error, service string) error {
	text := "switchboard: no responders"
	if !transport.Names(err, service) {
		text += ": nobody serves " + service
	}
	return transport.Layer(err, text, ErrNoResponders)
}
