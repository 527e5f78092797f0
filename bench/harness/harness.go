// Package harness runs Switchboard, the raw broker clients and Watermill
// through the same scenarios, in the same process and the same round, and
// reports throughput, latency percentiles and allocations per message.
//
// A Case is one (transport, pattern, implementation) triple. Its Setup
// connects and declares what it needs (not measured); Run sends n messages
// (measured: wall time, per-message latencies when the pattern has them,
// and runtime.MemStats.Mallocs over the run, divided by n).
package harness

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// Patterns.
const (
	// Publish: n messages of BodySize bytes published to a topic that has
	// one durable consumer group, which does not consume during the run.
	Publish = "publish"
	// PubSub: n messages published while one consumer of the group
	// consumes and acknowledges them; from the first publish to the last
	// acknowledgement handed to the client.
	PubSub = "pubsub"
	// Latency: one message at a time, published then consumed; the
	// one-way latency from the publish call to the handler.
	Latency = "latency"
	// RRLatency: request/reply round trips, one at a time.
	RRLatency = "rr-latency"
	// RRThroughput: request/reply with RRConcurrency requesters at once.
	RRThroughput = "rr-throughput"
	// Delay: delayed delivery accuracy, Switchboard only (no raw client
	// has portable delays): n messages published at once, due
	// DelayAhead to DelayAhead+DelaySpread later, spread evenly; the
	// latency of each is its lateness, handler entry minus
	// Message.DeliverAt. Not in Patterns: see DelayCase.
	Delay = "delay"
)

// Delay scenario parameters.
const (
	DelayAhead  = time.Second
	DelaySpread = time.Second
)

// DelayCase returns the delay-accuracy case of a transport, whose
// Switchboard client open opens.
func DelayCase(transport string, n int, open opener) Case {
	return Case{Transport: transport, Pattern: Delay, Impl: Switchboard, N: n, Setup: sbSetup(Delay, open)}
}

// Patterns lists every pattern in report order.
var Patterns = []string{Publish, PubSub, Latency, RRLatency, RRThroughput}

// Implementations.
const (
	Switchboard = "switchboard"
	Raw         = "raw"
	Watermill   = "watermill"
)

// Impls lists the implementations in report order.
var Impls = []string{Switchboard, Raw, Watermill}

// Shared scenario parameters, the same for every implementation.
const (
	BodySize      = 128
	Batch         = 100 // messages per publish call / confirm pipeline
	Prefetch      = 256 // consumer prefetch / max in flight
	RRConcurrency = 16  // concurrent requesters in RRThroughput
)

// Sample is what one Run measured.
type Sample struct {
	N       int
	Elapsed time.Duration
	Lat     []time.Duration // per message, for the latency patterns
}

// Runner runs one scenario repeatedly on one setup.
type Runner interface {
	Run(ctx context.Context, n int) (Sample, error)
	Close() error
}

// Case is one (transport, pattern, implementation).
type Case struct {
	Transport string
	Pattern   string
	Impl      string
	N         int // messages per measured run
	Setup     func(ctx context.Context) (Runner, error)
}

func (c Case) Name() string { return c.Transport + "/" + c.Pattern + "/" + c.Impl }

// Result is one measured run of a Case.
type Result struct {
	Case        Case
	N           int
	Elapsed     time.Duration
	MsgsPerSec  float64
	P50, P99    time.Duration
	AllocsPerOp float64
	BytesPerOp  float64
	Err         error
}

// Run sets c up, warms it up with a tenth of its messages, and measures
// one run of c.N messages.
func Run(ctx context.Context, c Case) Result {
	r := Result{Case: c, N: c.N}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rn, err := c.Setup(ctx)
	if err != nil {
		r.Err = fmt.Errorf("setup: %w", err)
		return r
	}
	defer func() {
		if err := rn.Close(); err != nil && r.Err == nil {
			r.Err = fmt.Errorf("close: %w", err)
		}
	}()
	if _, err := rn.Run(ctx, max(c.N/10, 1)); err != nil {
		r.Err = fmt.Errorf("warm-up: %w", err)
		return r
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	s, err := rn.Run(ctx, c.N)
	runtime.ReadMemStats(&m1)
	if err != nil {
		r.Err = err
		return r
	}
	r.N = s.N
	r.Elapsed = s.Elapsed
	r.MsgsPerSec = float64(s.N) / s.Elapsed.Seconds()
	r.AllocsPerOp = float64(m1.Mallocs-m0.Mallocs) / float64(s.N)
	r.BytesPerOp = float64(m1.TotalAlloc-m0.TotalAlloc) / float64(s.N)
	if len(s.Lat) > 0 {
		l := slices.Clone(s.Lat)
		slices.Sort(l)
		r.P50 = pct(l, 0.50)
		r.P99 = pct(l, 0.99)
	}
	return r
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// BenchLine formats r in the Go benchmark format that benchstat reads.
func BenchLine(r Result) string {
	if r.Err != nil {
		return ""
	}
	name := fmt.Sprintf("Benchmark%s/transport=%s/impl=%s", pascal(r.Case.Pattern), r.Case.Transport, r.Case.Impl)
	s := fmt.Sprintf("%s\t%d\t%.0f ns/op\t%.0f msgs/s\t%.2f allocs/op\t%.0f B/op",
		name, r.N, float64(r.Elapsed.Nanoseconds())/float64(r.N), r.MsgsPerSec, r.AllocsPerOp, r.BytesPerOp)
	if r.P50 > 0 {
		s += fmt.Sprintf("\t%d p50-ns\t%d p99-ns", r.P50.Nanoseconds(), r.P99.Nanoseconds())
	}
	return s
}

func pascal(s string) string {
	var b strings.Builder
	for _, w := range strings.Split(s, "-") {
		if w == "rr" {
			b.WriteString("RR")
			continue
		}
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// Median returns the median of xs (0 for none).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Spread returns the min and max of xs.
func Spread(xs []float64) (lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	return slices.Min(xs), slices.Max(xs)
}
