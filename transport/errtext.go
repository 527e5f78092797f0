package transport

import "strings"

// Error text convention. An error names each layer once:
//
//   - an adapter says what it did and to what, then the sentinel it
//     matches, then the broker's own error:
//     `kafka: send to queue "prices.rpc": switchboard: destination not found: <broker error>`;
//   - package messaging (and the CLI) add only what the adapter did not
//     say (`switchboard: no responders: ...`), through Layer;
//   - a sentinel keeps its text, but the "switchboard: " that begins the
//     text of every sentinel (and of messaging's errors) is printed once,
//     at its first place in the chain.
//
// errors.Is and errors.As see every wrapped error, sentinels and broker
// errors alike.

// sbPrefix begins the text of every sentinel error of the SDK.
const sbPrefix = "switchboard: "

// Layer wraps err in one more layer: its text is text, ": " and err's
// text, with every "switchboard: " after the first left out; errors.Is
// and errors.As see err and each of also (sentinels this layer adds, such
// as messaging.ErrNoResponders, whose text text should already say). An
// empty text adds nothing but the de-duplication. Layer(nil, ...) is nil.
func Layer(err error, text string, also ...error) error {
	if err == nil {
		return nil
	}
	return &layerError{text: text, errs: append([]error{err}, also...)}
}

type layerError struct {
	text string
	errs []error
}

func (e *layerError) Error() string {
	s := e.errs[0].Error()
	if e.text != "" {
		s = e.text + ": " + s
	}
	return OncePrefix(s)
}

func (e *layerError) Unwrap() []error { return e.errs }

// OncePrefix returns s with every "switchboard: " after the first left
// out.
func OncePrefix(s string) string {
	i := strings.Index(s, sbPrefix)
	if i < 0 {
		return s
	}
	head, rest := s[:i+len(sbPrefix)], s[i+len(sbPrefix):]
	if !strings.Contains(rest, sbPrefix) {
		return s
	}
	return head + strings.ReplaceAll(rest, sbPrefix, "")
}

// Names reports whether err's text already names name (a queue, topic or
// service), so that a layer above need not say it again. An adapter that
// renders names in its broker's alphabet (SQS: "prices.rpc" becomes
// "prices_drpc.fifo") names them too when it gives the part before the
// first '.'.
func Names(err error, name string) bool {
	if err == nil || name == "" {
		return false
	}
	text := err.Error()
	if strings.Contains(text, name) {
		return true
	}
	base, _, dotted := strings.Cut(name, ".")
	return dotted && base != "" && strings.Contains(text, base)
}
