package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/switchboard-go/switchboard/messaging"
)

func init() {
	commandDetails["bench"] = `Measures the throughput and latency of one pattern on the URL:
  pubsub    --concurrency publishers publish to a topic; one group consumes
  notify    --concurrency senders notify a recipient; it listens
  request   --concurrency requesters call an echo service, one request at
            a time each
Latency is from send to receipt (pubsub, notify) or the round trip
(request). One client does both sides, so mem:// works. A progress line is
shown on stderr when stderr is a terminal; the summary table goes to
stdout. The topic, recipient or service is named bench-<uuid> (or --name);
on a network broker it stays declared afterwards.
`
}

const benchHeader = "pattern\tmessages\tsize\tconcurrency\tseconds\tmsg/s\tMB/s\tp50\tp90\tp99\tmax"

func benchCommand() *command {
	return &command{
		name:    "bench",
		args:    "pubsub|request|notify",
		summary: "measure throughput and latency of a pattern",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			n := fs.Int("messages", 10000, "send `N` messages")
			size := fs.Int("size", 256, "body size in `bytes`")
			conc := fs.Int("concurrency", 4, "`N` concurrent senders")
			timeout := fs.Duration("timeout", 5*time.Minute, "give up after this `duration` (exit 3)")
			name := fs.String("name", "", "topic, recipient or service `name` (default bench-<uuid>)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("want one pattern (pubsub, request or notify), got %d arguments", len(args))
				}
				pattern := args[0]
				switch pattern {
				case "pubsub", "request", "notify":
				default:
					return usagef("unknown pattern %q: want pubsub, request or notify", pattern)
				}
				switch {
				case *n < 1:
					return usagef("--messages %d: must be at least 1", *n)
				case *size < 0:
					return usagef("--size %d: must not be negative", *size)
				case *conc < 1:
					return usagef("--concurrency %d: must be at least 1", *conc)
				case *timeout <= 0:
					return usagef("--timeout %s: must be positive", *timeout)
				}
				if *name == "" {
					*name = "bench-" + uuid.NewString()[:8]
				}
				b := &bench{pattern: pattern, name: *name, n: *n, size: *size, conc: *conc,
					lat: make([]time.Duration, *n)}
				ctx, cancel := context.WithTimeout(ctx, *timeout)
				defer cancel()
				c, err := openClient(ctx, e, g)
				if err != nil {
					return err
				}
				var stopProgress func()
				if e.terminal(e.stderr) {
					stopProgress = b.progress(e.stderr)
				}
				elapsed, err := b.run(ctx, c)
				if stopProgress != nil {
					stopProgress()
				}
				if cerr := c.Close(); err == nil && cerr != nil {
					err = fmt.Errorf("close: %w", cerr)
				}
				if err != nil {
					return fmt.Errorf("bench %s: %d of %d messages done: %w", pattern, b.received.Load(), b.n, err)
				}
				b.table(e.stdout, elapsed)
				return nil
			}
		},
	}
}

type bench struct {
	pattern, name string
	n, size, conc int

	sent     atomic.Int64
	received atomic.Int64
	lat      []time.Duration // one per received message
	start    time.Time
}

// sentHeader carries the send time, Unix nanoseconds, on pubsub and
// notify messages.
const sentHeader = "bench-sent"

// record stores one latency; it reports whether the run is complete.
func (b *bench) record(d time.Duration) bool {
	i := b.received.Add(1)
	if i > int64(b.n) { // a redelivery: at-least-once
		return false
	}
	b.lat[i-1] = d
	return i == int64(b.n)
}

func (b *bench) run(ctx context.Context, c *messaging.Client) (time.Duration, error) {
	body := make([]byte, b.size)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	done := make(chan struct{})
	var doneOnce sync.Once
	finish := func() { doneOnce.Do(func() { close(done) }) }
	consumer := func(_ context.Context, m *messaging.Message) error {
		ns, err := strconv.ParseInt(m.Header(sentHeader), 10, 64)
		if err != nil {
			return messaging.Permanent(fmt.Errorf("no %s header", sentHeader))
		}
		if b.record(time.Since(time.Unix(0, ns))) {
			finish()
		}
		return nil
	}
	opts := []messaging.SubscribeOption{messaging.WithMaxInFlight(max(64, b.conc*4)), messaging.WithKeyOrdering(false)}
	var send func(ctx context.Context) error
	switch b.pattern {
	case "pubsub":
		if _, err := c.Subscribe(ctx, b.name, "bench", consumer, opts...); err != nil {
			return 0, err
		}
		send = func(ctx context.Context) error {
			return c.Publish(ctx, b.name, &messaging.Message{Body: body,
				Headers: map[string]string{sentHeader: strconv.FormatInt(time.Now().UnixNano(), 10)}})
		}
	case "notify":
		if _, err := c.Listen(ctx, b.name, consumer, opts...); err != nil {
			return 0, err
		}
		send = func(ctx context.Context) error {
			return c.Notify(ctx, b.name, &messaging.Message{Body: body,
				Headers: map[string]string{sentHeader: strconv.FormatInt(time.Now().UnixNano(), 10)}})
		}
	case "request":
		if _, err := c.Serve(ctx, b.name, echo, opts...); err != nil {
			return 0, err
		}
		send = func(ctx context.Context) error {
			t := time.Now()
			if _, err := c.Request(ctx, b.name, &messaging.Message{Body: body}); err != nil {
				return err
			}
			if b.record(time.Since(t)) {
				finish()
			}
			return nil
		}
	}
	b.start = time.Now()
	var next atomic.Int64
	errc := make(chan error, b.conc)
	var wg sync.WaitGroup
	for range b.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.n) {
				if err := send(ctx); err != nil {
					errc <- err
					return
				}
				b.sent.Add(1)
			}
		}()
	}
	var err error
	select {
	case <-done:
	case err = <-errc:
	case <-ctx.Done():
		err = ctx.Err()
	}
	elapsed := time.Since(b.start)
	wg.Wait()
	return elapsed, err
}

// progress shows a live line on w until the returned function is called.
func (b *bench) progress(w io.Writer) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				got := min(b.received.Load(), int64(b.n))
				secs := time.Since(b.start).Seconds()
				rate := 0.0
				if secs > 0 {
					rate = float64(got) / secs
				}
				fmt.Fprintf(w, "\r\033[K%s: sent %d, received %d of %d (%3.0f%%), %.0f msg/s",
					b.pattern, b.sent.Load(), got, b.n, 100*float64(got)/float64(b.n), rate)
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

// table writes the summary table.
func (b *bench) table(w io.Writer, elapsed time.Duration) {
	lat := slices.Clone(b.lat)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		i := int(p*float64(len(lat))+0.5) - 1
		return lat[max(0, min(i, len(lat)-1))]
	}
	secs := elapsed.Seconds()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, benchHeader+"\t")
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%.0f\t%.2f\t%s\t%s\t%s\t%s\t\n",
		b.pattern, b.n, b.size, b.conc, secs, float64(b.n)/secs, float64(b.n)*float64(b.size)/secs/1e6,
		fmtLatency(pct(0.50)), fmtLatency(pct(0.90)), fmtLatency(pct(0.99)), fmtLatency(lat[len(lat)-1]))
	tw.Flush()
}

func fmtLatency(d time.Duration) string {
	return d.Round(time.Microsecond).String()
}
