package harness

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestInMemCases runs every in-memory case once, tiny, to prove the
// harness works; it measures nothing worth reading.
func TestInMemCases(t *testing.T) {
	for _, c := range InMem(0.002) {
		t.Run(c.Name(), func(t *testing.T) {
			r := Run(context.Background(), c)
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if r.MsgsPerSec <= 0 || r.AllocsPerOp <= 0 {
				t.Fatalf("nothing measured: %+v", r)
			}
			if (c.Pattern == Latency || c.Pattern == RRLatency) && r.P50 <= 0 {
				t.Fatalf("no latency: %+v", r)
			}
			if !strings.HasPrefix(BenchLine(r), "Benchmark") {
				t.Fatalf("bench line %q", BenchLine(r))
			}
		})
	}
}

// TestRabbitMQCases runs every RabbitMQ case once, tiny; it skips when no
// broker answers.
func TestRabbitMQCases(t *testing.T) {
	url := os.Getenv("SWITCHBOARD_AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	if err := RabbitReachable(context.Background(), url); err != nil {
		t.Skipf("no RabbitMQ at %s: %v", url, err)
	}
	cs, cleanup := RabbitMQ(url, 0.01)
	defer cleanup()
	for _, c := range cs {
		t.Run(c.Name(), func(t *testing.T) {
			if r := Run(context.Background(), c); r.Err != nil {
				t.Fatal(r.Err)
			}
		})
	}
}

func TestReport(t *testing.T) {
	c := Case{Transport: "inmem", Pattern: PubSub, Impl: Switchboard}
	d := Case{Transport: "inmem", Pattern: PubSub, Impl: Raw}
	rp := &Report{Rounds: [][]Result{
		{{Case: c, MsgsPerSec: 90, AllocsPerOp: 4}, {Case: d, MsgsPerSec: 100}},
		{{Case: c, MsgsPerSec: 80, AllocsPerOp: 4}, {Case: d, MsgsPerSec: 100}},
	}}
	var b strings.Builder
	rp.Markdown(&b)
	if !strings.Contains(b.String(), "0.85× (0.80×–0.90×)") {
		t.Fatalf("ratio missing:\n%s", b.String())
	}
}
