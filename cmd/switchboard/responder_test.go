package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-go/switchboard/kafka/kafkatest"
)

// README: `gather quotes 'parcel 2kg' --want 1 --timeout 10s  # 12 EUR,
// from group dhl`: gather's text and --json output name the group that
// replied.
func TestGatherPrintsResponder(t *testing.T) {
	u := kafkatest.URL(t)
	env := []string{"SWITCHBOARD_URL=" + u}
	topic := "quotes-" + uuid.NewString()[:8]
	r := startBin(t, env, "respond", topic, "--group", "dhl", "--exec", "echo 12 EUR")
	r.waitReady(t)
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{nil, "responder:     dhl\n"},
		{[]string{"--json"}, `"responder":"dhl"`},
	} {
		args := append([]string{"gather", topic, "parcel 2kg", "--want", "1", "--timeout", "20s"}, tc.extra...)
		code, stdout, stderr := runBin(t, time.Minute, env, args...)
		if code != 0 || !strings.Contains(stdout, "12 EUR") {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, stdout, stderr)
		}
		if !strings.Contains(stdout, tc.want) {
			t.Errorf("%v does not say the reply came from group dhl (want %q):\n%s", args, tc.want, stdout)
		}
	}
	r.interrupt(t)
}
