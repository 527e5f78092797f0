package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wmkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	kafkago "github.com/segmentio/kafka-go"

	_ "github.com/switchboard-go/switchboard/kafka" // registers kafka://
	"github.com/switchboard-go/switchboard/messaging"
)

// KafkaPartitions is the partition count of every topic, on every side.
const KafkaPartitions = 3

// KafkaOptions are the adapter options used here: group timings short
// enough for kfake (as in kafka/kafkatest), the default 2ms linger.
const KafkaOptions = "partitions=3&heartbeat_interval=100ms&session_timeout=1s&rebalance_timeout=3s" +
	"&max_wait=200ms&metadata_ttl=250ms&drain_timeout=500ms&join_backoff=100ms&batch_timeout=2ms"

// Kafka returns the Kafka cases against brokers (kfake, or a real
// cluster), all at the same guarantee: acks=all, topics of
// KafkaPartitions partitions, consumer groups committing what was handled.
//
//   - switchboard: messaging over the kafka adapter (kafka-go inside):
//     one Publish of Batch messages is one WriteMessages, acks=all, 2ms
//     linger, CRC32 balancer; Subscribe with WithMaxInFlight(Prefetch).
//     Request/reply: Serve/Request over a queue topic and a reply topic.
//   - raw: kafka-go v0.4.47 by hand with the adapter's producer settings
//     (RequiredAcks=all, BatchTimeout 2ms, BatchSize 10000,
//     CRC32Balancer), one WriteMessages per Batch; a Reader in a consumer
//     group (FetchMessage, CommitMessages with CommitInterval 50ms, i.e.
//     commits batched in the background like the adapter's). No
//     request/reply: n/a.
//   - watermill: watermill-kafka v3.1.1 (sarama v1.43 sync producer,
//     RequiredAcks=WaitForAll, Publish sends one message at a time and
//     waits its ack; sarama's default, no linger); a consumer group
//     reading from the oldest offset, one message in flight per
//     partition (Watermill waits for each Ack). No request/reply: n/a.
func Kafka(brokers []string, scale float64) []Case {
	var cs []Case
	ns := map[string]int{Publish: 5000, PubSub: 5000, Latency: 300, RRLatency: 200, RRThroughput: 1000}
	url := "kafka://" + strings.Join(brokers, ",") + "?" + KafkaOptions
	for _, p := range Patterns {
		n := max(int(float64(ns[p])*scale), 10)
		cs = append(cs, Case{Transport: "kafka", Pattern: p, Impl: Switchboard, N: n, Setup: sbSetup(p, openURL(url))})
		if p == Publish || p == PubSub || p == Latency {
			cs = append(cs,
				Case{Transport: "kafka", Pattern: p, Impl: Raw, N: n, Setup: kafkaRaw(brokers, p)},
				Case{Transport: "kafka", Pattern: p, Impl: Watermill, N: n, Setup: watermillKafka(brokers, p)},
			)
		}
	}
	cs = append(cs, DelayCase("kafka", max(int(500*scale), 10), openURL(url)))
	return cs
}

// openURL opens a Switchboard client on url; nothing to clean up (the
// broker is the benchmark's own).
func openURL(url string) opener {
	return func(ctx context.Context) (*messaging.Client, func(string) error, error) {
		c, err := messaging.Open(ctx, url)
		return c, func(string) error { return nil }, err
	}
}

func kafkaCreateTopic(ctx context.Context, brokers []string, name string) error {
	c := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := c.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: name, NumPartitions: KafkaPartitions, ReplicationFactor: -1}}})
	if err != nil {
		return err
	}
	for _, e := range res.Errors {
		if e != nil && !errors.Is(e, kafkago.TopicAlreadyExists) {
			return e
		}
	}
	return nil
}

func kafkaRaw(brokers []string, pattern string) func(ctx context.Context) (Runner, error) {
	return func(ctx context.Context) (Runner, error) {
		name := uniq("raw")
		if err := kafkaCreateTopic(ctx, brokers, name); err != nil {
			return nil, err
		}
		tctx, cancel := context.WithCancel(context.Background())
		kt := &kafkago.Transport{MetadataTTL: time.Second, Context: tctx}
		w := &kafkago.Writer{
			Addr: kafkago.TCP(brokers...), Topic: name, Balancer: kafkago.CRC32Balancer{}, RequiredAcks: kafkago.RequireAll,
			BatchTimeout: 2 * time.Millisecond, BatchSize: 10000, Transport: kt,
		}
		r := &runner{closers: closers{func() error { cancel(); kt.CloseIdleConnections(); return nil }, w.Close}}
		fail := func(err error) (Runner, error) { r.Close(); return nil, err }
		msgs := make([]kafkago.Message, Batch)
		publishBatch := func(ctx context.Context, k int) error {
			for i := range msgs[:k] {
				msgs[i] = kafkago.Message{Value: body}
			}
			return w.WriteMessages(ctx, msgs[:k]...)
		}
		consume := func(onMsg func()) error {
			rd := kafkago.NewReader(kafkago.ReaderConfig{
				Brokers: brokers, GroupID: name + ":g", Topic: name, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 200 * time.Millisecond,
				HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: time.Second, RebalanceTimeout: 3 * time.Second,
				JoinGroupBackoff: 100 * time.Millisecond, StartOffset: kafkago.FirstOffset, CommitInterval: 50 * time.Millisecond,
				QueueCapacity: Prefetch,
			})
			rctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					m, err := rd.FetchMessage(rctx)
					if err != nil {
						return
					}
					onMsg()
					if err := rd.CommitMessages(rctx, m); err != nil {
						return
					}
				}
			}()
			r.closers = append(r.closers, func() error { stop(); <-done; return rd.Close() })
			return nil
		}
		switch pattern {
		case Publish:
			r.run = func(ctx context.Context, n int) (Sample, error) {
				start := now()
				err := batches(ctx, n, publishBatch)
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
				if err := batches(ctx, n, publishBatch); err != nil {
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
				return latencyRun(ctx, n, p, func(ctx context.Context) error { return publishBatch(ctx, 1) })
			}
		default:
			return fail(fmt.Errorf("kafka raw: pattern %q not applicable", pattern))
		}
		return r, nil
	}
}

func watermillKafka(brokers []string, pattern string) func(ctx context.Context) (Runner, error) {
	return func(ctx context.Context) (Runner, error) {
		topic := uniq("wm")
		if err := kafkaCreateTopic(ctx, brokers, topic); err != nil {
			return nil, err
		}
		logger := watermill.NopLogger{}
		pcfg := wmkafka.DefaultSaramaSyncPublisherConfig()
		pcfg.Producer.RequiredAcks = sarama.WaitForAll
		pcfg.Version = sarama.V2_1_0_0
		r := &runner{}
		fail := func(err error) (Runner, error) { r.Close(); return nil, err }
		p, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{Brokers: brokers, Marshaler: wmkafka.DefaultMarshaler{}, OverwriteSaramaConfig: pcfg}, logger)
		if err != nil {
			return fail(err)
		}
		r.closers = append(r.closers, p.Close)
		bctx, cancel := context.WithCancel(context.Background())
		r.closers = append(r.closers, func() error { cancel(); return nil })
		consume := func(onMsg func()) error {
			scfg := wmkafka.DefaultSaramaSubscriberConfig()
			scfg.Consumer.Offsets.Initial = sarama.OffsetOldest
			scfg.Consumer.Group.Session.Timeout = time.Second
			scfg.Consumer.Group.Heartbeat.Interval = 100 * time.Millisecond
			scfg.Consumer.MaxWaitTime = 200 * time.Millisecond
			scfg.Version = sarama.V2_1_0_0
			s, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{
				Brokers: brokers, Unmarshaler: wmkafka.DefaultMarshaler{}, OverwriteSaramaConfig: scfg, ConsumerGroup: "g",
			}, logger)
			if err != nil {
				return err
			}
			r.closers = append(r.closers, s.Close)
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
		pub := func(ctx context.Context, k int) error { return p.Publish(topic, wmMessages(k)...) }
		switch pattern {
		case Publish:
			r.run = func(ctx context.Context, n int) (Sample, error) {
				start := now()
				err := batches(ctx, n, pub)
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
				if err := batches(ctx, n, pub); err != nil {
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
				return latencyRun(ctx, n, pg, func(ctx context.Context) error { return pub(ctx, 1) })
			}
		default:
			return fail(fmt.Errorf("watermill: pattern %q not applicable", pattern))
		}
		return r, nil
	}
}
