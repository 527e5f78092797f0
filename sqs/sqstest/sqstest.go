// Package sqstest gives tests an SQS/SNS endpoint: the one in
// SWITCHBOARD_SQS_ENDPOINT when it is set, else the fauxqs emulator pinned
// in sqs/testdata/emulator (installed with npm on first use, run with the
// machine's Node >= 20). Only tests should import it.
package sqstest

import (
	"net/url"
	"os"
	"testing"

	"github.com/switchboard-go/switchboard/internal/sqsemu"
	"github.com/switchboard-go/switchboard/internal/testenv"
)

// EnvEndpoint names the environment variable with an SQS/SNS endpoint to
// use instead of the emulator.
const EnvEndpoint = "SWITCHBOARD_SQS_ENDPOINT"

// Region is the region the tests use.
const Region = sqsemu.Region

// SetDummyCredentials sets static AWS credentials in the environment when
// none are set: the emulator does not check them, and the adapter reads
// credentials through the default AWS chain.
func SetDummyCredentials() {
	for _, kv := range sqsemu.DummyCredentials {
		if os.Getenv(kv[0]) == "" {
			os.Setenv(kv[0], kv[1])
		}
	}
}

// URL returns an sqs:// URL for the test: SWITCHBOARD_SQS_ENDPOINT, or a
// new emulator stopped when the test ends. When neither can be had, it
// reports the broker missing (testenv.Missing).
func URL(t testing.TB) string {
	t.Helper()
	SetDummyCredentials()
	ep := os.Getenv(EnvEndpoint)
	if ep == "" {
		e, err := Start(0)
		if err != nil {
			testenv.Missing(t, "sqs", "%s is unset and the fauxqs emulator could not start: %v", EnvEndpoint, err)
		}
		t.Cleanup(e.Stop)
		ep = e.Endpoint()
	}
	return "sqs://?region=" + Region + "&endpoint=" + url.QueryEscape(ep) + "&wait=1s"
}

// Emulator is a running fauxqs process (see package internal/sqsemu,
// which `switchboard dev sqs` also runs).
type Emulator = sqsemu.Emulator

// Install runs sqs/testdata/emulator/install.sh (npm ci of the pinned
// fauxqs) when node_modules is missing.
func Install() error { return sqsemu.Install() }

// Start starts fauxqs on 127.0.0.1:port (0: a free port), installing it
// first if needed, and waits until it answers.
func Start(port int) (*Emulator, error) { return sqsemu.Start(port) }
