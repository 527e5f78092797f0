package sqs_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/switchboard-go/switchboard/conformance"
	sbsqs "github.com/switchboard-go/switchboard/sqs"
	"github.com/switchboard-go/switchboard/transport"
)

func TestConformance(t *testing.T) {
	ep := needEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Name: "sqs",
		Open: func(ctx context.Context) (transport.Transport, error) {
			return transport.Open(ctx, "sqs://?region="+region+"&endpoint="+ep+"&wait=1s") // the default URL: FIFO mode
		},
		OpenDialer: func(ctx context.Context, dial conformance.DialFunc) (transport.Transport, error) {
			cfg := rawConfig(ep)
			cfg.Credentials = credentials.NewStaticCredentialsProvider("test", "test", "")
			return sbsqs.New(cfg, sbsqs.Options{WaitTime: 1e9, DialContext: dial, FIFO: true})
		},
		// SQS never cancels a consumer; what happens to consumers on
		// their own is their queue being deleted (by an operator, a
		// stack): the group's queue is deleted.
		CancelConsumers: func(ctx context.Context, topic, group string) error {
			cfg := rawConfig(ep)
			tr := http.DefaultTransport.(*http.Transport).Clone()
			defer tr.CloseIdleConnections()
			cfg.HTTPClient = &http.Client{Transport: tr}
			sq := sqs.NewFromConfig(cfg)
			u, err := sq.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(sbsqs.GroupQueueName(topic, group, true))})
			if err != nil {
				return err
			}
			_, err = sq.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: u.QueueUrl})
			return err
		},
		Teardown: func(ctx context.Context, prefix string) error {
			return deletePrefix(ctx, ep, prefix)
		},
	})
}

// TestConformanceStandardQueues runs the suite in the opt-in standard
// mode (fifo=false): Capabilities.OrderedByKey is false, and the cases
// that prove per-key order across the members of a group (R70-R72) assert
// only what the mode keeps (nothing lost); every other rule holds.
func TestConformanceStandardQueues(t *testing.T) {
	ep := needEndpoint(t)
	conformance.Run(t, conformance.Harness{
		Name: "sqs-standard",
		Open: func(ctx context.Context) (transport.Transport, error) {
			return transport.Open(ctx, "sqs://?region="+region+"&endpoint="+ep+"&wait=1s&fifo=false")
		},
		OpenDialer: func(ctx context.Context, dial conformance.DialFunc) (transport.Transport, error) {
			cfg := rawConfig(ep)
			cfg.Credentials = credentials.NewStaticCredentialsProvider("test", "test", "")
			return sbsqs.New(cfg, sbsqs.Options{WaitTime: 1e9, DialContext: dial})
		},
		CancelConsumers: func(ctx context.Context, topic, group string) error {
			cfg := rawConfig(ep)
			tr := http.DefaultTransport.(*http.Transport).Clone()
			defer tr.CloseIdleConnections()
			cfg.HTTPClient = &http.Client{Transport: tr}
			sq := sqs.NewFromConfig(cfg)
			u, err := sq.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(sbsqs.GroupQueueName(topic, group, false))})
			if err != nil {
				return err
			}
			_, err = sq.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: u.QueueUrl})
			return err
		},
		Teardown: func(ctx context.Context, prefix string) error {
			return deletePrefix(ctx, ep, prefix)
		},
	})
}
