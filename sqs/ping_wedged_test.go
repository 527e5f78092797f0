package sqs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/messaging"
)

// Client.Ping on an endpoint that accepts TCP and never answers must fail
// within its context (readiness probes give it about a second): this holds.
// Its error text repeats every layer (switchboard: ping sqs: sqs: ping:
// switchboard: broker unavailable: ...).
func TestPingWedgedEndpoint(t *testing.T) {
	addr := testenv.SilentBroker(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	ctx := context.Background()
	c, err := messaging.Open(ctx, "sqs://?region=us-east-1&endpoint=http://"+addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	start := time.Now()
	err = c.Ping(pctx)
	if took := time.Since(start); err == nil || took > 2*time.Second {
		t.Errorf("Ping with a 1s context on a wedged endpoint: %v after %v", err, took)
	}
	// Issue 14: error text names each layer once.
	if err != nil {
		for _, layer := range []string{"switchboard: ", "ping", "sqs"} {
			if n := strings.Count(err.Error(), layer); n > 1 {
				t.Errorf("%q appears %d times in the Ping error: %v", layer, n, err)
			}
		}
	}
}
