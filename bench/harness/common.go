package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// counter lets a consumer signal when a run's messages have all arrived.
type counter struct {
	n      atomic.Int64
	target atomic.Int64
	mu     sync.Mutex
	done   chan struct{}
}

func newCounter() *counter {
	c := &counter{done: make(chan struct{})}
	c.target.Store(-1)
	return c
}

// arm starts a run of n messages and returns the channel closed when the
// last one arrives.
func (c *counter) arm(n int) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = make(chan struct{})
	c.n.Store(0)
	c.target.Store(int64(n))
	return c.done
}

// hit counts one message.
func (c *counter) hit() {
	if c.n.Add(1) == c.target.Load() {
		c.mu.Lock()
		close(c.done)
		c.mu.Unlock()
	}
}

// ping carries one-at-a-time latency measurements: the publisher records
// when it started, the consumer reports when it got the message.
type ping struct {
	got chan time.Time
}

func newPing() *ping { return &ping{got: make(chan time.Time, 1)} }

// seen is called by the consumer.
func (p *ping) seen() {
	select {
	case p.got <- time.Now():
	default:
	}
}

// latencyRun publishes n messages one at a time with send, waiting for
// the consumer each time.
func latencyRun(ctx context.Context, n int, p *ping, send func(context.Context) error) (Sample, error) {
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for range n {
		t0 := time.Now()
		if err := send(ctx); err != nil {
			return Sample{}, err
		}
		select {
		case t1 := <-p.got:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(10 * time.Second):
			return Sample{}, errors.New("message not consumed within 10s")
		case <-ctx.Done():
			return Sample{}, ctx.Err()
		}
	}
	return Sample{N: n, Elapsed: time.Since(start), Lat: lat}, nil
}

// waitDone waits for a counter's run.
func waitDone(ctx context.Context, done <-chan struct{}, c *counter) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("consumed %d of %d: %w", c.n.Load(), c.target.Load(), ctx.Err())
	}
}

// rrRun makes n requests with conc requesters; one does lat-recording.
func rrRun(ctx context.Context, n, conc int, req func(ctx context.Context, worker int) error) (Sample, error) {
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make([]error, conc)
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, n/conc+1)
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				if err := req(ctx, w); err != nil {
					errs[w] = err
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return Sample{}, err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return Sample{N: n, Elapsed: el, Lat: all}, nil
}

// batches calls pub for each run of Batch messages out of n.
func batches(ctx context.Context, n int, pub func(ctx context.Context, k int) error) error {
	for i := 0; i < n; i += Batch {
		if err := pub(ctx, min(Batch, n-i)); err != nil {
			return err
		}
	}
	return nil
}

// closers closes in reverse order.
type closers []func() error

func (c closers) Close() error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runner adapts functions to Runner.
type runner struct {
	run func(ctx context.Context, n int) (Sample, error)
	closers
}

func (r *runner) Run(ctx context.Context, n int) (Sample, error) { return r.run(ctx, n) }

// body is text, so that no transport has to encode it (SQS refuses
// control characters; the sqs adapter would send zeros base64).
var body = bytes.Repeat([]byte("x"), BodySize)

func now() time.Time                  { return time.Now() }
func since(t time.Time) time.Duration { return time.Since(t) }
