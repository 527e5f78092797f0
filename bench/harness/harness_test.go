package harness

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchboard-go/switchboard/sqs/sqstest"
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

// TestKafkaCases runs every Kafka case once, tiny, on an in-process kfake
// cluster.
func TestKafkaCases(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Skipf("kfake: %v", err)
	}
	defer c.Close()
	for _, cs := range Kafka(c.ListenAddrs(), 0.002) {
		t.Run(cs.Name(), func(t *testing.T) {
			if r := Run(context.Background(), cs); r.Err != nil {
				t.Fatal(r.Err)
			}
		})
	}
}

// TestSQSCases runs every SQS case once, tiny, on SWITCHBOARD_SQS_ENDPOINT
// or the fauxqs emulator; it skips when neither is available.
func TestSQSCases(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	sqstest.SetDummyCredentials()
	ep := os.Getenv("SWITCHBOARD_SQS_ENDPOINT")
	if ep == "" {
		e, err := sqstest.Start(0)
		if err != nil {
			t.Skipf("no SQS endpoint and no emulator: %v", err)
		}
		defer e.Stop()
		ep = e.Endpoint()
	}
	for _, cs := range SQS(ep, 0.005) {
		t.Run(cs.Name(), func(t *testing.T) {
			if r := Run(context.Background(), cs); r.Err != nil {
				t.Fatal(r.Err)
			}
		})
	}
}
