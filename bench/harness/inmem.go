package harness

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// InMem returns the in-memory cases. n scales the message counts.
//
//   - switchboard: messaging over mem:// (package inmem).
//   - raw: the inmem transport used directly, without package messaging
//     (no IDs generated, no handler pool, no telemetry, no retries): the
//     cost of the portable layer is the difference.
//   - watermill: Watermill's GoChannel (Persistent for Publish, so that
//     published messages are kept as the inmem broker keeps them for the
//     group; default config otherwise: Publish does not wait for the
//     subscriber's ack, as Switchboard's Publish does not). Watermill has
//     no request/reply on GoChannel without its CQRS component: n/a.
func InMem(scale float64) []Case {
	var cs []Case
	ns := map[string]int{Publish: 100000, PubSub: 50000, Latency: 5000, RRLatency: 5000, RRThroughput: 20000}
	for _, p := range Patterns {
		n := max(int(float64(ns[p])*scale), 10)
		cs = append(cs,
			Case{Transport: "inmem", Pattern: p, Impl: Switchboard, N: n, Setup: sbSetup(p, openMem)},
			Case{Transport: "inmem", Pattern: p, Impl: Raw, N: n, Setup: inmemRaw(p)},
		)
		if p == Publish || p == PubSub || p == Latency {
			cs = append(cs, Case{Transport: "inmem", Pattern: p, Impl: Watermill, N: n, Setup: gochannelSetup(p)})
		}
	}
	cs = append(cs, DelayCase("inmem", max(int(2000*scale), 10), openMem))
	return cs
}

func openMem(ctx context.Context) (*messaging.Client, func(string) error, error) {
	c, err := messaging.Open(ctx, "mem://?max_queue_length=10000000")
	return c, func(string) error { return nil }, err
}

func inmemRaw(pattern string) func(ctx context.Context) (Runner, error) {
	return func(ctx context.Context) (Runner, error) {
		b, err := inmem.NewBroker(inmem.WithMaxQueueLength(10_000_000))
		if err != nil {
			return nil, err
		}
		tr := b.Transport()
		r := &runner{closers: closers{tr.Close}}
		fail := func(err error) (Runner, error) { r.Close(); return nil, err }
		topic := transport.Topic(uniq("bench"))
		tms := make([]*transport.Message, Batch)
		for i := range tms {
			tms[i] = &transport.Message{ID: strconv.Itoa(i), Body: body, Time: time.Now()}
		}
		bctx, cancel := context.WithCancel(context.Background())
		r.closers = append(r.closers, func() error { cancel(); return nil })
		consume := func(onMsg func()) error {
			s, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: Prefetch})
			if err != nil {
				return err
			}
			go func() {
				for {
					ms, err := s.Receive(bctx, Prefetch)
					if err != nil {
						return
					}
					ids := make([]any, len(ms))
					for i, m := range ms {
						ids[i] = m.AckID
						onMsg()
					}
					_ = s.Ack(bctx, ids)
				}
			}()
			r.closers = append(r.closers, s.Close)
			return nil
		}
		switch pattern {
		case Publish:
			s, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: Prefetch})
			if err != nil {
				return fail(err)
			}
			s.Close()
			r.run = func(ctx context.Context, n int) (Sample, error) {
				start := now()
				err := batches(ctx, n, func(ctx context.Context, k int) error { return tr.Send(ctx, topic, tms[:k]) })
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case PubSub:
			cnt := newCounter()
			if err := consume(cnt.hit); err != nil {
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				done := cnt.arm(n)
				start := now()
				if err := batches(ctx, n, func(ctx context.Context, k int) error { return tr.Send(ctx, topic, tms[:k]) }); err != nil {
					return Sample{}, err
				}
				err := waitDone(ctx, done, cnt)
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case Latency:
			p := newPing()
			if err := consume(p.seen); err != nil {
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				return latencyRun(ctx, n, p, func(ctx context.Context) error { return tr.Send(ctx, topic, tms[:1]) })
			}
		case RRLatency, RRThroughput:
			q := transport.Queue(topic.Name + ".rpc")
			if err := tr.Declare(ctx, q); err != nil {
				return fail(err)
			}
			s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: Prefetch})
			if err != nil {
				return fail(err)
			}
			r.closers = append(r.closers, s.Close)
			go func() {
				reply := []*transport.Message{{}}
				for {
					ms, err := s.Receive(bctx, Prefetch)
					if err != nil {
						return
					}
					ids := make([]any, len(ms))
					for i, m := range ms {
						reply[0] = &transport.Message{ID: m.ID, CorrelationID: m.ID, Body: m.Body, Time: m.Time}
						_ = tr.Send(bctx, transport.Reply(m.ReplyTo), reply)
						ids[i] = m.AckID
					}
					_ = s.Ack(bctx, ids)
				}
			}()
			conc := 1
			if pattern == RRThroughput {
				conc = RRConcurrency
			}
			inboxes := make([]transport.Inbox, conc)
			reqs := make([][]*transport.Message, conc)
			for w := range conc {
				ib, err := tr.OpenInbox(ctx)
				if err != nil {
					return fail(err)
				}
				inboxes[w] = ib
				r.closers = append(r.closers, ib.Close)
				reqs[w] = []*transport.Message{{ID: strconv.Itoa(w), ReplyTo: ib.Address(), Body: body, Time: time.Now()}}
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				return rrRun(ctx, n, conc, func(ctx context.Context, w int) error {
					if err := tr.Send(ctx, q, reqs[w]); err != nil {
						return err
					}
					_, err := inboxes[w].Receive(ctx)
					return err
				})
			}
		default:
			return fail(fmt.Errorf("unknown pattern %q", pattern))
		}
		return r, nil
	}
}

func wmMessages(k int) []*message.Message {
	ms := make([]*message.Message, k)
	for i := range ms {
		ms[i] = message.NewMessage(watermill.NewUUID(), body)
	}
	return ms
}

func gochannelSetup(pattern string) func(ctx context.Context) (Runner, error) {
	return func(ctx context.Context) (Runner, error) {
		cfg := gochannel.Config{OutputChannelBuffer: Prefetch}
		if pattern == Publish {
			cfg.Persistent = true
		}
		g := gochannel.NewGoChannel(cfg, watermill.NopLogger{})
		r := &runner{closers: closers{g.Close}}
		topic := uniq("bench")
		bctx, cancel := context.WithCancel(context.Background())
		r.closers = append(r.closers, func() error { cancel(); return nil })
		consume := func(onMsg func()) error {
			ch, err := g.Subscribe(bctx, topic)
			if err != nil {
				return err
			}
			go func() {
				for m := range ch {
					onMsg()
					m.Ack()
				}
			}()
			return nil
		}
		switch pattern {
		case Publish:
			r.run = func(ctx context.Context, n int) (Sample, error) {
				start := now()
				err := batches(ctx, n, func(ctx context.Context, k int) error { return g.Publish(topic, wmMessages(k)...) })
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case PubSub:
			cnt := newCounter()
			if err := consume(cnt.hit); err != nil {
				r.Close()
				return nil, err
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				done := cnt.arm(n)
				start := now()
				if err := batches(ctx, n, func(ctx context.Context, k int) error { return g.Publish(topic, wmMessages(k)...) }); err != nil {
					return Sample{}, err
				}
				err := waitDone(ctx, done, cnt)
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case Latency:
			p := newPing()
			if err := consume(p.seen); err != nil {
				r.Close()
				return nil, err
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				return latencyRun(ctx, n, p, func(ctx context.Context) error { return g.Publish(topic, wmMessages(1)...) })
			}
		default:
			r.Close()
			return nil, fmt.Errorf("watermill: pattern %q not applicable", pattern)
		}
		return r, nil
	}
}
