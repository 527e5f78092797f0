package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/rabbitmq"
)

// RabbitReachable reports whether a RabbitMQ broker answers at url.
func RabbitReachable(ctx context.Context, url string) error {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		return err
	}
	return conn.Close()
}

// RabbitMQ returns the RabbitMQ cases, all at the same guarantee:
// persistent messages (delivery mode 2) to durable quorum queues,
// publisher confirms awaited before a publish counts, manual acks,
// prefetch Prefetch.
//
//   - switchboard: messaging over the rabbitmq adapter (topic exchange,
//     group queue bound with "#"). Publish of Batch messages pipelines them
//     on one confirm channel and returns when all are confirmed. Request:
//     persistent, confirmed request over direct reply-to; the Serve
//     handler's reply is confirmed; the request is acked after.
//   - raw: amqp091-go doing the same by hand: a durable topic exchange and
//     quorum queue, Batch PublishWithDeferredConfirm then a wait for every
//     confirm, the same CloudEvents headers Switchboard writes; consumer
//     with Qos(Prefetch) and one basic.ack per message. Request/reply:
//     direct reply-to, each requester on its own confirm channel, the
//     server replies on a confirm channel (waiting the confirm), then acks.
//   - watermill: watermill-amqp v3 with NewDurablePubSubConfig (fanout
//     exchange per topic, durable queue per group), the queue made quorum,
//     Publish.ConfirmDelivery on (it waits for each message's confirm in
//     turn: it cannot pipeline), a pool of one channel, prefetch Prefetch.
//     No request/reply: n/a.
//
// The cleanup function deletes nothing (each case deletes what it
// declared when it closes); it is there for symmetry.
func RabbitMQ(url string, scale float64) ([]Case, func()) {
	var cs []Case
	ns := map[string]int{Publish: 5000, PubSub: 5000, Latency: 500, RRLatency: 500, RRThroughput: 3000}
	for _, p := range Patterns {
		n := max(int(float64(ns[p])*scale), 10)
		cs = append(cs,
			Case{Transport: "rabbitmq", Pattern: p, Impl: Switchboard, N: n, Setup: sbSetup(p, openRabbit(url))},
			Case{Transport: "rabbitmq", Pattern: p, Impl: Raw, N: n, Setup: rabbitRaw(url, p)},
		)
		if p == Publish || p == PubSub || p == Latency {
			cs = append(cs, Case{Transport: "rabbitmq", Pattern: p, Impl: Watermill, N: n, Setup: watermillAMQP(url, p)})
		}
	}
	cs = append(cs, DelayCase("rabbitmq", max(int(500*scale), 10), openRabbit(url)))
	return cs, func() {}
}

// prefix keeps this process's broker objects apart from others'.
var prefix = fmt.Sprintf("sbbench%d-", os.Getpid())

func withParams(url, params string) string {
	if strings.Contains(url, "?") {
		return url + "&" + params
	}
	return url + "?" + params
}

// deleteObjects deletes queues and exchanges (best effort).
func deleteObjects(url string, queues, exchanges []string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	var errs []error
	for _, q := range queues {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			errs = append(errs, err)
		} else {
			ch.Close()
		}
	}
	for _, x := range exchanges {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		if err := ch.ExchangeDelete(x, false, false); err != nil {
			errs = append(errs, err)
		} else {
			ch.Close()
		}
	}
	return errors.Join(errs...)
}

func openRabbit(url string) opener {
	return func(ctx context.Context) (*messaging.Client, func(string) error, error) {
		tr, err := rabbitmq.Open(ctx, withParams(url, "prefix="+prefix), nil)
		if err != nil {
			return nil, nil, err
		}
		c, err := messaging.New(tr)
		if err != nil {
			tr.Close()
			return nil, nil, err
		}
		// Delete what the adapter declared for the topic (or service) once
		// the client is closed; some of these do not exist: best effort.
		cleanup := func(b string) error {
			qs := append(tr.PartitionQueueNames(b, "g"), tr.MembersQueueName(b, "g"), tr.QueueName(messaging.DeadLetterQueue(b, "g")),
				tr.QueueName(b+".rpc"), tr.QueueName(messaging.DeadLetterQueue(b+".rpc", "")))
			_ = deleteObjects(url, qs, []string{tr.ExchangeName(b)})
			return nil
		}
		return c, cleanup, nil
	}
}

var quorum = amqp.Table{"x-queue-type": "quorum"}

func rabbitRaw(url, pattern string) func(ctx context.Context) (Runner, error) {
	return func(ctx context.Context) (Runner, error) {
		name := prefix + uniq("raw")
		conn, err := amqp.Dial(url)
		if err != nil {
			return nil, err
		}
		r := &runner{closers: closers{
			func() error { return deleteObjects(url, []string{name, name + ".rpc"}, []string{name}) },
			conn.Close,
		}}
		fail := func(err error) (Runner, error) { r.Close(); return nil, err }
		ch, err := conn.Channel()
		if err != nil {
			return fail(err)
		}
		if err := ch.Confirm(false); err != nil {
			return fail(err)
		}
		headers := amqp.Table{
			"cloudEvents:specversion": "1.0",
			"cloudEvents:source":      "switchboard",
			"cloudEvents:time":        time.Now().UTC().Format(time.RFC3339Nano),
		}
		pub := func(i int) amqp.Publishing {
			return amqp.Publishing{
				MessageId: strconv.Itoa(i), Body: body, DeliveryMode: amqp.Persistent,
				Timestamp: time.Now(), Headers: headers,
			}
		}
		dcs := make([]*amqp.DeferredConfirmation, 0, Batch)
		publishBatch := func(ctx context.Context, k int) error {
			dcs = dcs[:0]
			for i := range k {
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, name, "", false, false, pub(i))
				if err != nil {
					return err
				}
				dcs = append(dcs, dc)
			}
			for _, dc := range dcs {
				if ok, err := dc.WaitContext(ctx); err != nil || !ok {
					return fmt.Errorf("not confirmed (ack %v): %v", ok, err)
				}
			}
			return nil
		}
		declare := func() error {
			if err := ch.ExchangeDeclare(name, "topic", true, false, false, false, nil); err != nil {
				return err
			}
			if _, err := ch.QueueDeclare(name, true, false, false, false, quorum); err != nil {
				return err
			}
			return ch.QueueBind(name, "#", name, false, nil)
		}
		consume := func(onMsg func()) error {
			cch, err := conn.Channel()
			if err != nil {
				return err
			}
			if err := cch.Qos(Prefetch, 0, false); err != nil {
				return err
			}
			ds, err := cch.Consume(name, "", false, false, false, false, nil)
			if err != nil {
				return err
			}
			go func() {
				for d := range ds {
					onMsg()
					_ = d.Ack(false)
				}
			}()
			return nil
		}
		switch pattern {
		case Publish:
			if err := declare(); err != nil {
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				start := now()
				err := batches(ctx, n, publishBatch)
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case PubSub:
			cnt := newCounter()
			if err := declare(); err != nil {
				return fail(err)
			}
			if err := consume(cnt.hit); err != nil {
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				done := cnt.arm(n)
				start := now()
				if err := batches(ctx, n, publishBatch); err != nil {
					return Sample{}, err
				}
				err := waitDone(ctx, done, cnt)
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case Latency:
			p := newPing()
			if err := declare(); err != nil {
				return fail(err)
			}
			if err := consume(p.seen); err != nil {
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				return latencyRun(ctx, n, p, func(ctx context.Context) error { return publishBatch(ctx, 1) })
			}
		case RRLatency, RRThroughput:
			q := name + ".rpc"
			if _, err := ch.QueueDeclare(q, true, false, false, false, quorum); err != nil {
				return fail(err)
			}
			sch, err := conn.Channel()
			if err != nil {
				return fail(err)
			}
			if err := sch.Qos(Prefetch, 0, false); err != nil {
				return fail(err)
			}
			reqs, err := sch.Consume(q, "", false, false, false, false, nil)
			if err != nil {
				return fail(err)
			}
			rch, err := conn.Channel() // replies on their own confirm channel, as the adapter does
			if err != nil {
				return fail(err)
			}
			if err := rch.Confirm(false); err != nil {
				return fail(err)
			}
			bctx, cancel := context.WithCancel(context.Background())
			r.closers = append(r.closers, func() error { cancel(); return nil })
			go func() {
				for d := range reqs {
					go func() { // handled concurrently, up to the prefetch, like Serve's workers
						dc, err := rch.PublishWithDeferredConfirmWithContext(bctx, "", d.ReplyTo, false, false,
							amqp.Publishing{CorrelationId: d.MessageId, MessageId: d.MessageId, Body: d.Body, Timestamp: time.Now(), Headers: headers})
						if err == nil {
							_, _ = dc.WaitContext(bctx)
						}
						_ = d.Ack(false)
					}()
				}
			}()
			conc := 1
			if pattern == RRThroughput {
				conc = RRConcurrency
			}
			type requester struct {
				ch      *amqp.Channel
				replies <-chan amqp.Delivery
			}
			rs := make([]requester, conc)
			for w := range conc {
				cch, err := conn.Channel()
				if err != nil {
					return fail(err)
				}
				if err := cch.Confirm(false); err != nil {
					return fail(err)
				}
				replies, err := cch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
				if err != nil {
					return fail(err)
				}
				rs[w] = requester{cch, replies}
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				return rrRun(ctx, n, conc, func(ctx context.Context, w int) error {
					rq := rs[w]
					dc, err := rq.ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, amqp.Publishing{
						MessageId: strconv.Itoa(w), ReplyTo: "amq.rabbitmq.reply-to", Body: body,
						DeliveryMode: amqp.Persistent, Timestamp: time.Now(), Headers: headers,
					})
					if err != nil {
						return err
					}
					if ok, err := dc.WaitContext(ctx); err != nil || !ok {
						return fmt.Errorf("request not confirmed (ack %v): %v", ok, err)
					}
					select {
					case <-rq.replies:
						return nil
					case <-time.After(10 * time.Second):
						return errors.New("no reply within 10s")
					}
				})
			}
		default:
			return fail(fmt.Errorf("unknown pattern %q", pattern))
		}
		return r, nil
	}
}

func watermillAMQP(url, pattern string) func(ctx context.Context) (Runner, error) {
	return func(ctx context.Context) (Runner, error) {
		topic := prefix + uniq("wm")
		cfg := wmamqp.NewDurablePubSubConfig(url, wmamqp.GenerateQueueNameTopicNameWithSuffix("g"))
		cfg.Queue.Arguments = quorum
		cfg.Publish.ConfirmDelivery = true
		cfg.Publish.ChannelPoolSize = 1
		cfg.Consume.Qos.PrefetchCount = Prefetch
		logger := watermill.NopLogger{}
		r := &runner{closers: closers{func() error {
			return deleteObjects(url, []string{topic + "_g"}, []string{topic})
		}}}
		fail := func(err error) (Runner, error) { r.Close(); return nil, err }
		p, err := wmamqp.NewPublisher(cfg, logger)
		if err != nil {
			return fail(err)
		}
		r.closers = append(r.closers, p.Close)
		s, err := wmamqp.NewSubscriber(cfg, logger)
		if err != nil {
			return fail(err)
		}
		r.closers = append(r.closers, s.Close)
		if err := s.SubscribeInitialize(topic); err != nil {
			return fail(err)
		}
		bctx, cancel := context.WithCancel(context.Background())
		r.closers = append(r.closers, func() error { cancel(); return nil })
		consume := func(onMsg func()) error {
			ch, err := s.Subscribe(bctx, topic)
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
				err := batches(ctx, n, func(ctx context.Context, k int) error { return p.Publish(topic, wmMessages(k)...) })
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
				if err := batches(ctx, n, func(ctx context.Context, k int) error { return p.Publish(topic, wmMessages(k)...) }); err != nil {
					return Sample{}, err
				}
				err := waitDone(ctx, done, cnt)
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case Latency:
			pg := newPing()
			if err := consume(pg.seen); err != nil {
				return fail(err)
			}
			r.run = func(ctx context.Context, n int) (Sample, error) {
				return latencyRun(ctx, n, pg, func(ctx context.Context) error { return p.Publish(topic, wmMessages(1)...) })
			}
		default:
			return fail(fmt.Errorf("watermill: pattern %q not applicable", pattern))
		}
		return r, nil
	}
}
