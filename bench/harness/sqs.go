package harness

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	_ "github.com/switchboard-go/switchboard/sqs" // registers sqs://
)

// RawUnbatched is the raw SQS client without batch calls.
const RawUnbatched = "raw-unbatched"

// SQSRegion is the region given to the emulator.
const SQSRegion = "us-east-1"

// SQS returns the SQS cases against an SQS endpoint (the fauxqs emulator):
// every side sends to one standard queue and deletes what it handled.
//
//   - switchboard: messaging over the sqs adapter, Notify/Listen (a
//     recipient's queue, the same SQS queue as raw; Publish/Subscribe
//     would add an SNS hop). A Notify of Batch messages is 10 sequential
//     SendMessageBatch calls; one receiver long-polls 10 at a time
//     (wait=1s), acks are DeleteMessageBatch. Request/reply: Serve/Request
//     over a queue and an inbox queue.
//   - raw: aws-sdk-go-v2 batched: SendMessageBatch of 10, ReceiveMessage
//     of 10 (WaitTimeSeconds 1), DeleteMessageBatch; one poller.
//   - raw-unbatched: SendMessage per message, ReceiveMessage of 10,
//     DeleteMessage per message.
//   - watermill: n/a (watermill-aws is not available from the module
//     proxy here: 403).
//
// No raw request/reply: n/a.
func SQS(endpoint string, scale float64) []Case {
	var cs []Case
	ns := map[string]int{Publish: 2000, PubSub: 2000, Latency: 200, RRLatency: 200, RRThroughput: 1000}
	u := "sqs://?region=" + SQSRegion + "&endpoint=" + url.QueryEscape(endpoint) + "&wait=1s"
	for _, p := range Patterns {
		n := max(int(float64(ns[p])*scale), 10)
		cs = append(cs, Case{Transport: "sqs", Pattern: p, Impl: Switchboard, N: n, Setup: sbSetupMode(p, openURL(u), true)})
		switch p {
		case Publish, PubSub:
			cs = append(cs,
				Case{Transport: "sqs", Pattern: p, Impl: Raw, N: n, Setup: sqsRaw(endpoint, p, true)},
				Case{Transport: "sqs", Pattern: p, Impl: RawUnbatched, N: n, Setup: sqsRaw(endpoint, p, false)})
		case Latency:
			cs = append(cs, Case{Transport: "sqs", Pattern: p, Impl: Raw, N: n, Setup: sqsRaw(endpoint, p, true)})
		}
	}
	cs = append(cs, DelayCase("sqs", max(int(200*scale), 10), openURL(u)))
	return cs
}

func sqsRaw(endpoint, pattern string, batched bool) func(ctx context.Context) (Runner, error) {
	return func(ctx context.Context) (Runner, error) {
		c := sqs.NewFromConfig(aws.Config{
			Region: SQSRegion, Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
			BaseEndpoint: aws.String(endpoint),
		})
		out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(uniq("sbbench-raw"))})
		if err != nil {
			return nil, err
		}
		q := out.QueueUrl
		r := &runner{closers: closers{func() error {
			_, err := c.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: q})
			return err
		}}}
		fail := func(err error) (Runner, error) { r.Close(); return nil, err }
		ids := make([]*string, 10)
		for i := range ids {
			ids[i] = aws.String(strconv.Itoa(i))
		}
		sbody := aws.String(string(body))
		send := func(ctx context.Context, k int) error {
			for i := 0; i < k; {
				if !batched {
					if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q, MessageBody: sbody}); err != nil {
						return err
					}
					i++
					continue
				}
				entries := make([]sqstypes.SendMessageBatchRequestEntry, 0, 10)
				for j := 0; j < 10 && i < k; j, i = j+1, i+1 {
					entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: ids[j], MessageBody: sbody})
				}
				res, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q, Entries: entries})
				if err != nil {
					return err
				}
				if len(res.Failed) > 0 {
					return fmt.Errorf("%d entries failed: %s", len(res.Failed), aws.ToString(res.Failed[0].Message))
				}
			}
			return nil
		}
		consume := func(onMsg func()) {
			rctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				for rctx.Err() == nil {
					res, err := c.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{QueueUrl: q, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
					if err != nil || len(res.Messages) == 0 {
						continue
					}
					for range res.Messages {
						onMsg()
					}
					if batched {
						entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(res.Messages))
						for j, m := range res.Messages {
							entries[j] = sqstypes.DeleteMessageBatchRequestEntry{Id: ids[j], ReceiptHandle: m.ReceiptHandle}
						}
						_, _ = c.DeleteMessageBatch(rctx, &sqs.DeleteMessageBatchInput{QueueUrl: q, Entries: entries})
					} else {
						for _, m := range res.Messages {
							_, _ = c.DeleteMessage(rctx, &sqs.DeleteMessageInput{QueueUrl: q, ReceiptHandle: m.ReceiptHandle})
						}
					}
				}
			}()
			r.closers = append(r.closers, func() error { stop(); <-done; return nil })
		}
		switch pattern {
		case Publish:
			r.run = func(ctx context.Context, n int) (Sample, error) {
				start := now()
				err := batches(ctx, n, send)
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case PubSub:
			cnt := newCounter()
			consume(cnt.hit)
			r.run = func(ctx context.Context, n int) (Sample, error) {
				done := cnt.arm(n)
				start := now()
				if err := batches(ctx, n, send); err != nil {
					return Sample{}, err
				}
				err := waitDone(ctx, done, cnt)
				return Sample{N: n, Elapsed: since(start)}, err
			}
		case Latency:
			p := newPing()
			consume(p.seen)
			r.run = func(ctx context.Context, n int) (Sample, error) {
				return latencyRun(ctx, n, p, func(ctx context.Context) error { return send(ctx, 1) })
			}
		default:
			return fail(fmt.Errorf("sqs raw: pattern %q not applicable", pattern))
		}
		return r, nil
	}
}
