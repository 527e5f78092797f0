// Package testenv decides, for tests, whether a broker is required and
// what to do when none is found.
//
// Brokers are found in this order: an endpoint in the environment
// (SWITCHBOARD_KAFKA_BROKERS, SWITCHBOARD_AMQP_URL, SWITCHBOARD_SQS_ENDPOINT),
// then a local fixture, then containers where Docker runs. When none is
// found, a test calls Missing, which skips loudly, or fails when
// SWITCHBOARD_REQUIRE names the broker or says "all".
package testenv

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Required reports whether SWITCHBOARD_REQUIRE names broker (for example
// "kafka") or is "all". The variable holds a comma-separated list.
func Required(broker string) bool {
	for _, v := range strings.Split(os.Getenv("SWITCHBOARD_REQUIRE"), ",") {
		v = strings.TrimSpace(strings.ToLower(v))
		if v == "all" || v == strings.ToLower(broker) {
			return true
		}
	}
	return false
}

// Missing reports that no broker could be found for broker, with the
// reason. It fails the test when the broker is required and skips it
// otherwise; either way it stops the test and prints a banner that is
// hard to miss in `go test -v` output.
func Missing(t testing.TB, broker string, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	msg := fmt.Sprintf("\n"+
		"************************************************************\n"+
		"*** NO %s BROKER: %s\n"+
		"*** %s tests did NOT run. Set SWITCHBOARD_REQUIRE=%s to make this a failure.\n"+
		"************************************************************",
		strings.ToUpper(broker), reason, broker, broker)
	if Required(broker) {
		t.Fatalf("%s\n(SWITCHBOARD_REQUIRE=%s: a missing broker is a failure)", msg, os.Getenv("SWITCHBOARD_REQUIRE"))
	}
	t.Skip(msg)
}
