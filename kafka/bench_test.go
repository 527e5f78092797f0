package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/transport"
)

// BenchmarkKafka compares the adapter with raw kafka-go on the same cluster
// (kfake in process, or SWITCHBOARD_KAFKA_BROKERS), in one run:
//
//	go test -run '^$' -bench Kafka -benchtime 2000x ./kafka/
//
// publish: batches of 100 messages of 256 bytes, acks=all;
// consume: receive and acknowledge (commit) messages already published;
// request-reply: one request and its reply, sequentially (latency).
func BenchmarkKafka(b *testing.B) {
	brokers := testBrokers(b)
	body := []byte(strings.Repeat("x", 256))
	// newWriter returns a raw kafka-go producer configured like the
	// adapter's, closed (transport included) at the end of the benchmark.
	newWriter := func(b *testing.B) *kafkago.Writer {
		tctx, cancel := context.WithCancel(context.Background())
		kt := &kafkago.Transport{MetadataTTL: time.Second, Context: tctx}
		w := &kafkago.Writer{
			Addr: kafkago.TCP(brokers...), Balancer: kafkago.CRC32Balancer{}, RequiredAcks: kafkago.RequireAll,
			BatchTimeout: 2 * time.Millisecond, BatchSize: 10000,
			Transport: kt, AllowAutoTopicCreation: true,
		}
		b.Cleanup(func() { _ = w.Close(); cancel(); kt.CloseIdleConnections() })
		return w
	}
	createTopic := func(b *testing.B, name string, parts int) {
		tr := openT(b)
		var c *kafkago.Client
		tr.As(&c)
		if _, err := c.CreateTopics(context.Background(), &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: name, NumPartitions: parts, ReplicationFactor: -1}}}); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()

	b.Run("publish/switchboard", func(b *testing.B) {
		tr := openT(b)
		topic := transport.Topic(unique("bench-pub"))
		send(b, tr, topic, msg("warm", "", ""))
		b.ResetTimer()
		for i := 0; i < b.N; i += 100 {
			batch := make([]*transport.Message, 0, 100)
			for j := i; j < i+100 && j < b.N; j++ {
				batch = append(batch, &transport.Message{ID: fmt.Sprint(j), Body: body})
			}
			if err := tr.Send(ctx, topic, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("publish/kafka-go", func(b *testing.B) {
		name := unique("bench-raw-pub")
		createTopic(b, name, 3)
		w := newWriter(b)
		if err := w.WriteMessages(ctx, kafkago.Message{Topic: name, Value: body}); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i += 100 {
			batch := make([]kafkago.Message, 0, 100)
			for j := i; j < i+100 && j < b.N; j++ {
				batch = append(batch, kafkago.Message{Topic: name, Value: body})
			}
			if err := w.WriteMessages(ctx, batch...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("consume/switchboard", func(b *testing.B) {
		tr := openT(b)
		q := transport.Queue(unique("bench-con"))
		if err := tr.Declare(ctx, q); err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i += 100 {
			batch := make([]*transport.Message, 0, 100)
			for j := i; j < i+100 && j < b.N; j++ {
				batch = append(batch, &transport.Message{ID: fmt.Sprint(j), Body: body})
			}
			send(b, tr, q, batch...)
		}
		b.ResetTimer()
		s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 256})
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < b.N; {
			ms, err := s.Receive(ctx, 256)
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]any, len(ms))
			for i, m := range ms {
				ids[i] = m.AckID
			}
			if err := s.Ack(ctx, ids); err != nil {
				b.Fatal(err)
			}
			n += len(ms)
		}
		_ = s.Close() // final commit
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("consume/kafka-go", func(b *testing.B) {
		name := unique("bench-raw-con")
		createTopic(b, name, 3)
		w := newWriter(b)
		for i := 0; i < b.N; i += 100 {
			batch := make([]kafkago.Message, 0, 100)
			for j := i; j < i+100 && j < b.N; j++ {
				batch = append(batch, kafkago.Message{Topic: name, Value: body})
			}
			if err := w.WriteMessages(ctx, batch...); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		r := kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: brokers, GroupID: name, Topic: name, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 200 * time.Millisecond,
			HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: 6 * time.Second, RebalanceTimeout: 3 * time.Second,
			JoinGroupBackoff: 100 * time.Millisecond, StartOffset: kafkago.FirstOffset, CommitInterval: 50 * time.Millisecond,
		})
		for n := 0; n < b.N; n++ {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.CommitMessages(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
		_ = r.Close()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("request-reply/switchboard", func(b *testing.B) {
		client := openT(b)
		server := openT(b)
		q := transport.Queue(unique("bench-rpc"))
		s, err := server.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 16})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				ms, err := s.Receive(sctx, 16)
				if err != nil {
					return
				}
				for _, m := range ms {
					_ = server.Send(sctx, transport.Reply(m.ReplyTo), []*transport.Message{{ID: "r" + m.ID, CorrelationID: m.ID, Body: m.Body}})
					_ = s.Ack(sctx, []any{m.AckID})
				}
			}
		}()
		defer func() { stop(); <-done }()
		ib, err := client.OpenInbox(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer ib.Close()
		call := func(i int) {
			if err := client.Send(ctx, q, []*transport.Message{{ID: fmt.Sprint(i), ReplyTo: ib.Address(), Body: body}}); err != nil {
				b.Fatal(err)
			}
			if _, err := ib.Receive(ctx); err != nil {
				b.Fatal(err)
			}
		}
		call(-1) // warm up: group joined, reply topic known
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			call(i)
		}
	})
	b.Run("request-reply/kafka-go", func(b *testing.B) {
		reqTopic, repTopic := unique("bench-raw-req"), unique("bench-raw-rep")
		createTopic(b, reqTopic, 1)
		createTopic(b, repTopic, 1)
		w := newWriter(b)
		rr := func(topic string) *kafkago.Reader {
			r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 4 << 20, MaxWait: 200 * time.Millisecond})
			_ = r.SetOffset(kafkago.FirstOffset)
			return r
		}
		reqR, repR := rr(reqTopic), rr(repTopic)
		defer reqR.Close()
		defer repR.Close()
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				m, err := reqR.FetchMessage(sctx)
				if err != nil {
					return
				}
				_ = w.WriteMessages(sctx, kafkago.Message{Topic: repTopic, Value: m.Value})
			}
		}()
		defer func() { stop(); <-done }()
		call := func() {
			if err := w.WriteMessages(ctx, kafkago.Message{Topic: reqTopic, Value: body}); err != nil {
				b.Fatal(err)
			}
			if _, err := repR.FetchMessage(ctx); err != nil {
				b.Fatal(err)
			}
		}
		call()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			call()
		}
	})
}
