package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// SoakOptions configures Soak. Zero fields take the defaults given.
type SoakOptions struct {
	Duration   time.Duration // how long the steady load runs; default 10m
	Rate       int           // messages published per second; default 1000
	Requests   int           // request/reply round trips per second; default 20
	Samples    int           // heap samples over Duration, evenly spaced; default 10
	ProfileDir string        // if set, heap profiles soak-<transport>-first.pprof and -last.pprof go there
}

func (o *SoakOptions) defaults() {
	if o.Duration <= 0 {
		o.Duration = 10 * time.Minute
	}
	if o.Rate <= 0 {
		o.Rate = 1000
	}
	if o.Requests <= 0 {
		o.Requests = 20
	}
	if o.Samples <= 0 {
		o.Samples = 10
	}
}

// SoakSample is one heap sample of a soak.
type SoakSample struct {
	At         time.Duration // since the load started
	Mem        memNow
	Published  int64 // messages published so far
	Handled    int64 // messages handled so far
	Requests   int64 // requests answered so far
	RequestErr int64 // requests that failed so far
}

// Soak runs a steady load on one Switchboard client of transport for
// o.Duration and samples the live heap and the goroutines o.Samples times:
//
//   - Publish of o.Rate messages a second (in 100 calls a second), every
//     message with a key never used before, to one topic consumed by one
//     group (Subscribe, key ordering on, WithMaxInFlight(Prefetch)): the
//     per-key state of messaging and of the transport must be freed as
//     keys go idle;
//   - o.Requests Request/Serve round trips a second: reply inboxes,
//     correlation state and reply topics must not accumulate.
//
// The same names are used throughout (one topic, one group, one service),
// so declared-name caches hold a fixed set. Growth shows as the last
// sample's heap over the first's; the backlog (published − handled) is in
// the samples, so that a consumer falling behind is not mistaken for a
// leak.
func Soak(ctx context.Context, transport string, ep Endpoints, o SoakOptions, progress io.Writer) ([]SoakSample, error) {
	o.defaults()
	open, err := sbOpener(transport, ep)
	if err != nil {
		return nil, err
	}
	c, cleanup, err := open(ctx)
	if err != nil {
		return nil, err
	}
	name := uniq("soak")
	defer func() { _ = cleanup(name) }()
	defer c.Close()

	var published, handled, answered, failed atomic.Int64
	if _, err := c.Subscribe(ctx, name, "g", func(context.Context, *messaging.Message) error {
		handled.Add(1)
		return nil
	}, messaging.WithMaxInFlight(Prefetch)); err != nil {
		return nil, err
	}
	if _, err := c.Serve(ctx, name, func(_ context.Context, m *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: m.Body}, nil
	}); err != nil {
		return nil, err
	}

	lctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var loadErr atomic.Pointer[error]
	setErr := func(err error) {
		if lctx.Err() == nil {
			loadErr.CompareAndSwap(nil, &err)
		}
	}
	wg.Add(2)
	go func() { // publisher: o.Rate msgs/s in 100 ticks a second
		defer wg.Done()
		per := max(o.Rate/100, 1)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		msgs := make([]*messaging.Message, per)
		var k int64
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			for i := range msgs {
				k++
				msgs[i] = &messaging.Message{Key: "k" + strconv.FormatInt(k, 10), Body: body}
			}
			if err := c.Publish(lctx, name, msgs...); err != nil {
				setErr(fmt.Errorf("publish: %w", err))
				return
			}
			published.Add(int64(per))
		}
	}()
	go func() { // requester
		defer wg.Done()
		t := time.NewTicker(time.Second / time.Duration(o.Requests))
		defer t.Stop()
		req := &messaging.Message{Body: body}
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			rctx, cancel := context.WithTimeout(lctx, 10*time.Second)
			_, err := c.Request(rctx, name, req)
			cancel()
			if err != nil {
				if lctx.Err() != nil {
					return
				}
				failed.Add(1)
				continue
			}
			answered.Add(1)
		}
	}()

	start := time.Now()
	var samples []SoakSample
	for i := 1; i <= o.Samples; i++ {
		at := o.Duration * time.Duration(i) / time.Duration(o.Samples)
		select {
		case <-time.After(time.Until(start.Add(at))):
		case <-ctx.Done():
			return samples, ctx.Err()
		}
		if p := loadErr.Load(); p != nil {
			return samples, *p
		}
		s := SoakSample{At: time.Since(start).Round(time.Second), Mem: measureMem(),
			Published: published.Load(), Handled: handled.Load(), Requests: answered.Load(), RequestErr: failed.Load()}
		samples = append(samples, s)
		if progress != nil {
			fmt.Fprintf(progress, "soak %s %8s  heap %s  stacks %s  goroutines %d  published %d handled %d requests %d (failed %d)\n",
				transport, s.At, mib(float64(s.Mem.Heap)), mib(float64(s.Mem.Stacks)), s.Mem.Goroutines, s.Published, s.Handled, s.Requests, s.RequestErr)
		}
		if o.ProfileDir != "" && (i == 1 || i == o.Samples) {
			which := "first"
			if i == o.Samples {
				which = "last"
			}
			if err := writeHeapProfile(filepath.Join(o.ProfileDir, "soak-"+transport+"-"+which+".pprof")); err != nil {
				return samples, err
			}
		}
	}
	stop()
	wg.Wait()
	return samples, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
}

// SoakMarkdown writes a soak's samples as a table, each figure also as a
// ratio to the first sample (the baseline, taken after Duration/Samples
// of load).
func SoakMarkdown(w io.Writer, transport string, o SoakOptions, samples []SoakSample) {
	o.defaults()
	if len(samples) == 0 {
		return
	}
	fmt.Fprintf(w, "Soak on %s: %d msgs/s published (a new key each), %d requests/s, for %s.\n\n", transport, o.Rate, o.Requests, o.Duration)
	fmt.Fprintln(w, "| at | live heap | ÷ first | goroutines | stacks | published | backlog | requests (failed) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	first := samples[0]
	for _, s := range samples {
		fmt.Fprintf(w, "| %s | %s | %.2f× | %d | %s | %d | %d | %d (%d) |\n", s.At, mib(float64(s.Mem.Heap)),
			float64(s.Mem.Heap)/float64(first.Mem.Heap), s.Mem.Goroutines, mib(float64(s.Mem.Stacks)),
			s.Published, s.Published-s.Handled, s.Requests, s.RequestErr)
	}
	fmt.Fprintln(w)
}
