package main

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-go/switchboard/kafka/kafkatest"
)

// Issue 14 input 7: error text names each layer once. `dlq list` on a
// mistyped topic (exit 6): "switchboard: " and the queue's name once.
func TestDLQTypoErrorNamesLayersOnce(t *testing.T) {
	u := kafkatest.URL(t)
	typo := "a-typo-" + uuid.NewString()[:8]
	code, _, stderr := runBin(t, time.Minute, nil, "--url", u, "dlq", "list", typo, "some-group")
	if code != exitNotFound {
		t.Fatalf("exit %d, want %d:\n%s", code, exitNotFound, stderr)
	}
	checkLayersOnce(t, stderr, "switchboard: ", typo+".some-group.dlq")
}

// Issue 14 input 7 for the error a newcomer meets first in the README
// session: a request nobody serves (exit 4).
func TestRequestErrorsNameLayersOnce(t *testing.T) {
	u := kafkatest.URL(t)
	env := []string{"SWITCHBOARD_URL=" + u}
	svc := "nobody-" + uuid.NewString()[:8]
	code, _, stderr := runBin(t, time.Minute, env, "request", svc, "--timeout", "5s", "book")
	if code != 4 {
		t.Fatalf("request: exit %d, want 4:\n%s", code, stderr)
	}
	checkLayersOnce(t, stderr, "switchboard: ", svc)
	t.Log(stderr)
}
