package messaging

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// EnvSource names the environment variable that sets a client's default
// CloudEvents source (see WithSource).
const EnvSource = "SWITCHBOARD_SOURCE"

// envOTelServiceName is OpenTelemetry's service name variable, the second
// choice of source.
const envOTelServiceName = "OTEL_SERVICE_NAME"

// WithSource sets the CloudEvents source of the messages the client
// publishes whose Message.Source is empty (requests, replies and gathers
// included): a URI-reference naming the producing service, for example
// "orders-api", "/eu-west-1/orders" or "https://example.com/orders"
// (CloudEvents 1.0, "source"). Source and ID together identify an event:
// consumers deduplicate on them, so give each service its own source.
//
// Without WithSource, the source is the first valid of: the
// SWITCHBOARD_SOURCE environment variable, OTEL_SERVICE_NAME (the
// OpenTelemetry service name), the executable's file name, and
// transport.DefaultSource ("switchboard"). Environment values that are not
// a valid URI-reference are skipped.
//
// New fails with an error matching ErrInvalid when source is empty, not
// valid UTF-8, holds control characters or does not parse as a URI
// reference.
func WithSource(source string) ClientOption {
	return func(o *clientOptions) { o.source, o.sourceSet = source, true }
}

// resolveSource validates the WithSource value, or picks the default.
func (o *clientOptions) resolveSource() error {
	if o.sourceSet {
		if err := validSource(o.source); err != nil {
			return invalid("WithSource(%q): %v", o.source, err)
		}
		return nil
	}
	o.source = defaultSource()
	return nil
}

// defaultSource returns the source a client uses without WithSource.
func defaultSource() string {
	for _, v := range []string{os.Getenv(EnvSource), os.Getenv(envOTelServiceName), executableName()} {
		if validSource(v) == nil {
			return v
		}
	}
	return "switchboard"
}

func executableName() string {
	if p, err := os.Executable(); err == nil {
		return filepath.Base(p)
	}
	if len(os.Args) > 0 {
		return filepath.Base(os.Args[0])
	}
	return ""
}

type sourceError string

func (e sourceError) Error() string { return string(e) }

// validSource checks a CloudEvents source: a non-empty URI-reference.
func validSource(s string) error {
	switch {
	case s == "":
		return sourceError("the source is empty")
	case !utf8.ValidString(s):
		return sourceError("the source is not valid UTF-8")
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return sourceError("the source holds control characters")
	}
	if _, err := url.Parse(s); err != nil {
		return err
	}
	return nil
}
