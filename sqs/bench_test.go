package sqs_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	sbsqs "github.com/switchboard-go/switchboard/sqs"
	"github.com/switchboard-go/switchboard/transport"
)

// BenchmarkThroughput compares publishing then consuming b.N messages of
// 256 bytes through Switchboard with raw aws-sdk-go-v2 calls, batched and
// unbatched, against the same emulator in one run:
//
//	go test -run '^$' -bench Throughput -benchtime 2000x ./sqs/
func BenchmarkThroughput(b *testing.B) {
	ep := needEndpoint(b)
	body := bytes.Repeat([]byte("x"), 256)
	ctx := context.Background()

	sb := func(perSend int, topic bool) func(b *testing.B) {
		return func(b *testing.B) {
			tr := open(b, "")
			p := uniq(b)
			var to transport.Address
			var s transport.Subscription
			var err error
			if topic {
				to = transport.Topic(p + "bench")
				s, err = tr.Subscribe(ctx, to, "g", transport.SubscribeOptions{MaxInFlight: 100})
			} else {
				to = transport.Queue(p + "bench")
				s, err = tr.Subscribe(ctx, to, "", transport.SubscribeOptions{MaxInFlight: 100})
			}
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i += perSend {
				n := min(perSend, b.N-i)
				msgs := make([]*transport.Message, n)
				for j := range msgs {
					msgs[j] = &transport.Message{ID: strconv.Itoa(i + j), Body: body, ContentType: "text/plain"}
				}
				if err := tr.Send(ctx, to, msgs); err != nil {
					b.Fatal(err)
				}
			}
			pub := time.Since(start)
			got := 0
			for got < b.N {
				ms, err := s.Receive(ctx, 100)
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
				got += len(ms)
			}
			report(b, pub, time.Since(start)-pub)
		}
	}

	raw := func(batched bool) func(b *testing.B) {
		return func(b *testing.B) {
			cfg := rawConfig(ep)
			htr := http.DefaultTransport.(*http.Transport).Clone()
			defer htr.CloseIdleConnections()
			cfg.HTTPClient = &http.Client{Transport: htr}
			c := sqs.NewFromConfig(cfg)
			p := uniq(b)
			out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(sbsqs.QueueName(p+"raw", false))})
			if err != nil {
				b.Fatal(err)
			}
			q := out.QueueUrl
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; {
				if !batched {
					if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q, MessageBody: aws.String(string(body))}); err != nil {
						b.Fatal(err)
					}
					i++
					continue
				}
				var entries []sqstypes.SendMessageBatchRequestEntry
				for j := 0; j < 10 && i < b.N; j, i = j+1, i+1 {
					entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(string(body))})
				}
				if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q, Entries: entries}); err != nil {
					b.Fatal(err)
				}
			}
			pub := time.Since(start)
			got := 0
			for got < b.N {
				r, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					b.Fatal(err)
				}
				if batched && len(r.Messages) > 0 {
					var entries []sqstypes.DeleteMessageBatchRequestEntry
					for j, m := range r.Messages {
						entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), ReceiptHandle: m.ReceiptHandle})
					}
					if _, err := c.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: q, Entries: entries}); err != nil {
						b.Fatal(err)
					}
				} else {
					for _, m := range r.Messages {
						if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: q, ReceiptHandle: m.ReceiptHandle}); err != nil {
							b.Fatal(err)
						}
					}
				}
				got += len(r.Messages)
			}
			report(b, pub, time.Since(start)-pub)
		}
	}

	b.Run("raw-unbatched", raw(false))
	b.Run("raw-batched", raw(true))
	b.Run("switchboard-queue-1perSend", sb(1, false))
	b.Run("switchboard-queue-100perSend", sb(100, false))
	b.Run("switchboard-topic-100perSend", sb(100, true))
}

func report(b *testing.B, pub, cons time.Duration) {
	b.ReportMetric(float64(b.N)/pub.Seconds(), "pub-msg/s")
	b.ReportMetric(float64(b.N)/cons.Seconds(), "consume-msg/s")
	b.ReportMetric(0, "ns/op")
	_ = fmt.Sprint()
}
