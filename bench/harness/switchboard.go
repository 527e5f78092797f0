package harness

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

var seq atomic.Int64

// uniq returns a fresh name, so that runs never share topics or queues.
func uniq(s string) string { return fmt.Sprintf("%s%d", s, seq.Add(1)) }

// opener opens a Switchboard client; the returned func cleans up after
// the client is closed (deletes broker objects).
type opener func(ctx context.Context) (*messaging.Client, func(topic string) error, error)

// sbSetup builds the Switchboard side of a pattern, the same code on
// every transport: only the URL differs.
//
//   - Publish/PubSub: Publish with Batch messages per call (one call
//     pipelines them; on RabbitMQ every message is confirmed before the
//     call returns); Subscribe with WithMaxInFlight(Prefetch) and
//     WithKeyOrdering(false), the handler returns nil (ack).
//   - Latency: one Publish of one message at a time.
//   - RRLatency/RRThroughput: Request to a Serve that echoes the body.
func sbSetup(pattern string, open opener) func(ctx context.Context) (Runner, error) {
	return sbSetupMode(pattern, open, false)
}

// sbSetupMode is sbSetup; with queue, the messages go to a recipient's
// queue (Notify/Listen) instead of a topic and group (Publish/Subscribe),
// to compare with raw clients that send to one queue (SQS).
func sbSetupMode(pattern string, open opener, queue bool) func(ctx context.Context) (Runner, error) {
	return func(ctx context.Context) (Runner, error) {
		c, cleanup, err := open(ctx)
		if err != nil {
			return nil, err
		}
		topic := uniq("bench")
		r := &runner{closers: closers{func() error { return cleanup(topic) }, c.Close}}
		fail := func(err error) (Runner, error) { r.Close(); return nil, err }
		msgs := make([]*messaging.Message, Batch)
		for i := range msgs {
			msgs[i] = &messaging.Message{Body: body}
		}
		subOpts := []messaging.SubscribeOption{messaging.WithMaxInFlight(Prefetch), messaging.WithKeyOrdering(false)}
		subscribe := func(h messaging.Handler) (*messaging.Subscription, error) {
			if queue {
				return c.Listen(ctx, topic, h, subOpts...)
			}
			return c.Subscribe(ctx, topic, "g", h, subOpts...)
		}
		publish := func(ctx context.Context, ms ...*messaging.Message) error {
			if queue {
				return c.Notify(ctx, topic, ms...)
			}
			return c.Publish(ctx, topic, ms...)
		}
		switch pattern {
		case Publish:
			s, err := subscribe(func(context.Context, *messaging.Message) error { return nil })
			if err != nil {
				return fail(err)
			}
			if err := s.Close(); err != nil { // the group stays declared, unconsumed
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				start := now()
				err := batches(ctx, n, func(ctx context.Context, k int) error { return publish(ctx, msgs[:k]...) })
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case PubSub:
			cnt := newCounter()
			if _, err := subscribe(func(context.Context, *messaging.Message) error { cnt.hit(); return nil }); err != nil {
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				done := cnt.arm(n)
				start := now()
				if err := batches(ctx, n, func(ctx context.Context, k int) error { return publish(ctx, msgs[:k]...) }); err != nil {
					return Sample{}, err
				}
				err := waitDone(ctx, done, cnt)
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case Latency:
			p := newPing()
			if _, err := subscribe(func(context.Context, *messaging.Message) error { p.seen(); return nil }); err != nil {
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				return latencyRun(ctx, n, p, func(ctx context.Context) error { return publish(ctx, msgs[0]) })
			}
		case RRLatency, RRThroughput:
			if _, err := c.Serve(ctx, topic, func(_ context.Context, m *messaging.Message) (*messaging.Message, error) {
				return &messaging.Message{Body: m.Body}, nil
			}, messaging.WithMaxInFlight(Prefetch), messaging.WithKeyOrdering(false)); err != nil {
				return fail(err)
			}
			conc := 1
			if pattern == RRThroughput {
				conc = RRConcurrency
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				return rrRun(ctx, n, conc, func(ctx context.Context, _ int) error {
					_, err := c.Request(ctx, topic, msgs[0])
					return err
				})
			}
		case Delay:
			var mu sync.Mutex
			var late []time.Duration
			cnt := newCounter()
			if _, err := subscribe(func(_ context.Context, m *messaging.Message) error {
				d := time.Since(m.DeliverAt)
				mu.Lock()
				late = append(late, d)
				mu.Unlock()
				cnt.hit()
				return nil
			}); err != nil {
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				mu.Lock()
				late = late[:0]
				mu.Unlock()
				done := cnt.arm(n)
				start := now()
				ms := make([]*messaging.Message, n)
				for i := range ms {
					ms[i] = &messaging.Message{Body: body, DeliverAt: start.Add(DelayAhead + DelaySpread*time.Duration(i)/time.Duration(n))}
				}
				if err := batches(ctx, n, func(ctx context.Context, k int) error {
					err := publish(ctx, ms[:k]...)
					ms = ms[k:]
					return err
				}); err != nil {
					return Sample{}, err
				}
				if err := waitDone(ctx, done, cnt); err != nil {
					return Sample{}, err
				}
				mu.Lock()
				defer mu.Unlock()
				return Sample{N: n, Elapsed: since(start), Lat: slices.Clone(late)}, nil
			}
		default:
			return fail(fmt.Errorf("unknown pattern %q", pattern))
		}
		return r, nil
	}
}
