package conformance

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// badErrorTextOnce proves R113: the text of an error names each layer
// once: "switchboard: " once, and the queue, topic or service once, for
// the main call paths that fail on a name (a request nobody serves, admin
// calls on a queue or group that does not exist), on every transport;
// errors.Is still finds the sentinels.
func badErrorTextOnce(e *env) {
	c := e.client()
	check := func(what, name string, err error, targets ...error) {
		e.Helper()
		if err == nil {
			e.Errorf("%s: no error", what)
			return
		}
		ok := false
		for _, t := range targets {
			ok = ok || errors.Is(err, t)
		}
		if !ok {
			e.Errorf("%s: got error %v, want one matching one of %v", what, err, targets)
		}
		if n := strings.Count(err.Error(), "switchboard: "); n > 1 {
			e.Errorf("%s: %q appears %d times in the error: %v", what, "switchboard: ", n, err)
		}
		// The SDK's layers name it once; the broker's own error may too.
		if n, native := strings.Count(err.Error(), name), strings.Count(brokerText(err), name); n > 1+native {
			e.Errorf("%s: %q appears %d times in the error, %d of them in the broker's: %v", what, name, n, native, err)
		}
	}
	svc := e.name("nobod")
	rctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
	_, err := c.Request(rctx, svc, &messaging.Message{Body: []byte("x")})
	cancel()
	check("Request to a service nobody serves", svc, err, messaging.ErrNoResponders, messaging.ErrTimeout)
	q := e.name("miss")
	_, err = c.Admin().Inspect(e.ctx, q, "")
	check("Admin.Inspect of a missing queue", q, err, messaging.ErrNotFound)
	err = c.Admin().Purge(e.ctx, q, "")
	check("Admin.Purge of a missing queue", q, err, messaging.ErrNotFound)
	t := e.name("misst")
	_, err = c.Admin().Inspect(e.ctx, t, "g")
	check("Admin.Inspect of a missing group", t, err, messaging.ErrNotFound)
}

// brokerText returns the text of the innermost error in err's chain that
// is not one of the SDK's sentinels (the broker's or client library's
// own error), or "" when there is none.
func brokerText(err error) string {
	sentinel := func(e error) bool {
		for _, s := range []error{transport.ErrNotFound, transport.ErrUnavailable, transport.ErrInvalid, transport.ErrClosed,
			transport.ErrMessageTooLarge, transport.ErrUnauthorized, transport.ErrTLS, messaging.ErrNoResponders, messaging.ErrTimeout} {
			if e == s {
				return true
			}
		}
		return false
	}
	for {
		var next error
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			next = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				if c != nil && !sentinel(c) {
					next = c
					break
				}
			}
		default:
			return err.Error()
		}
		if next == nil || sentinel(next) {
			return ""
		}
		err = next
	}
}
