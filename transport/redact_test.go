package transport_test

import (
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/transport"
)

// A secret query parameter whose value is not well-formed percent-encoding
// (or that carries a ';') is dropped by url.Query, so Redact never sees it
// and prints the raw query, secret included.
func TestRedactMalformedSecretParam(t *testing.T) {
	for _, raw := range []string{
		"kafka://user@127.0.0.1:9092?sasl=plain&sasl_password=s3cret%zz",
		"amqp://127.0.0.1:5672/?password=s3cret;x",
		"sqs://?region=us-east-1&secret_key=s3cret%",
	} {
		if got := transport.Redact(raw); strings.Contains(got, "s3cret") {
			t.Errorf("Redact(%q) = %q: the secret is printed", raw, got)
		}
	}
}

// README: "Errors name the URL once, redacted (`user:xxxxx@`)". A URL that
// does not parse is redacted as "xxxxx@", dropping the user name: the same
// user's URL reads two ways in the CLI's errors.
func TestRedactUnparsableKeepsUser(t *testing.T) {
	raw := "amqp://guest:guest@127.0.0.1:5672/%zz"
	if got, want := transport.Redact(raw), "amqp://guest:xxxxx@127.0.0.1:5672/%zz"; got != want {
		t.Errorf("Redact(%q) = %q, want %q (as for a URL that parses)", raw, got, want)
	}
}
