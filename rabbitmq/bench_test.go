package rabbitmq

import (
	"context"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/transport"
)

// Benchmarks compare the adapter with raw amqp091-go on the same broker,
// in one run:
//
//	go test -run '^$' -bench . -benchtime 5000x ./rabbitmq/
//
// PublishConfirmed publishes persistent 128-byte messages to a quorum
// queue, benchPipeline at a time, waiting for every confirm.
// RequestReply measures one request/reply round trip over direct reply-to
// (confirmed request, confirmed reply, acked request).

const benchPipeline = 100

func benchQueue(b *testing.B, tr *Transport, p string) string {
	ctx := context.Background()
	q := transport.Queue(p + "bench")
	if err := tr.Declare(ctx, q); err != nil {
		b.Fatal(err)
	}
	return tr.QueueName(q.Name)
}

func rawChannel(b *testing.B, confirm bool) (*amqp.Connection, *amqp.Channel) {
	conn, err := amqp.Dial(brokerURL(b))
	if err != nil {
		b.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if confirm {
		if err := ch.Confirm(false); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { _ = conn.Close() })
	return conn, ch
}

func BenchmarkPublishConfirmed(b *testing.B) {
	body := make([]byte, 128)
	b.Run("switchboard", func(b *testing.B) {
		p := uniq(b)
		tr := openT(b, p, "")
		q := benchQueue(b, tr, p)
		_ = q
		ctx := context.Background()
		batch := make([]*transport.Message, benchPipeline)
		for i := range batch {
			batch[i] = &transport.Message{ID: fmt.Sprint(i), Body: body, ContentType: "application/octet-stream"}
		}
		b.ResetTimer()
		start := time.Now()
		for n := 0; n < b.N; n += benchPipeline {
			if err := tr.Send(ctx, transport.Queue(p+"bench"), batch[:min(benchPipeline, b.N-n)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
	b.Run("amqp091", func(b *testing.B) {
		p := uniq(b)
		tr := openT(b, p, "")
		q := benchQueue(b, tr, p)
		_, ch := rawChannel(b, true)
		ctx := context.Background()
		dcs := make([]*amqp.DeferredConfirmation, 0, benchPipeline)
		b.ResetTimer()
		start := time.Now()
		for n := 0; n < b.N; n += benchPipeline {
			dcs = dcs[:0]
			for i := 0; i < min(benchPipeline, b.N-n); i++ {
				dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, amqp.Publishing{
					MessageId: fmt.Sprint(i), Body: body, ContentType: "application/octet-stream", DeliveryMode: amqp.Persistent,
					Headers: amqp.Table{"cloudEvents:specversion": "1.0", "cloudEvents:source": "switchboard"},
				})
				if err != nil {
					b.Fatal(err)
				}
				dcs = append(dcs, dc)
			}
			for _, dc := range dcs {
				if ok, err := dc.WaitContext(ctx); err != nil || !ok {
					b.Fatal("nack", err)
				}
			}
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	})
}

func BenchmarkRequestReply(b *testing.B) {
	b.Run("switchboard", func(b *testing.B) {
		p := uniq(b)
		client := openT(b, p, "")
		server := openT(b, "", "")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		q := transport.Queue(p + "bench.rpc")
		sub, err := server.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 10})
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				ms, err := sub.Receive(ctx, 10)
				if err != nil {
					return
				}
				for _, m := range ms {
					_ = server.Send(ctx, transport.Reply(m.ReplyTo), []*transport.Message{{CorrelationID: m.ID, Body: m.Body}})
					_ = sub.Ack(ctx, []any{m.AckID})
				}
			}
		}()
		defer func() { cancel(); <-done }()
		ib, err := client.OpenInbox(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer ib.Close()
		req := []*transport.Message{{ID: "r", ReplyTo: ib.Address(), Body: []byte("ping")}}
		b.ResetTimer()
		for range b.N {
			if err := client.Send(ctx, q, req); err != nil {
				b.Fatal(err)
			}
			if _, err := ib.Receive(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("amqp091", func(b *testing.B) {
		p := uniq(b)
		tr := openT(b, p, "")
		q := benchQueue(b, tr, p)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, sch := rawChannel(b, true)
		if err := sch.Qos(10, 0, false); err != nil {
			b.Fatal(err)
		}
		reqs, err := sch.Consume(q, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, rch := rawChannel(b, true) // replies published on their own channel, like the adapter
		done := make(chan struct{})
		go func() {
			defer close(done)
			for d := range reqs {
				dc, err := rch.PublishWithDeferredConfirmWithContext(ctx, "", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.MessageId, Body: d.Body})
				if err == nil {
					_, _ = dc.WaitContext(ctx)
				}
				_ = d.Ack(false)
			}
		}()
		_, cch := rawChannel(b, true)
		replies, err := cch.Consume(DirectReplyTo, "", true, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			dc, err := cch.PublishWithDeferredConfirmWithContext(ctx, "", q, true, false, amqp.Publishing{MessageId: "r", ReplyTo: DirectReplyTo, Body: []byte("ping"), DeliveryMode: amqp.Persistent})
			if err != nil {
				b.Fatal(err)
			}
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				b.Fatal("nack", err)
			}
			<-replies
		}
		b.StopTimer()
		_ = sch.Close()
		<-done
	})
}
