package kafka_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/conformance"
	"github.com/switchboard-go/switchboard/kafka"
	"github.com/switchboard-go/switchboard/transport"
)

// TestConformance runs the shared suite against the test cluster (kfake in
// process, or SWITCHBOARD_KAFKA_BROKERS).
func TestConformance(t *testing.T) {
	brokers := testBrokers(t)
	conformance.Run(t, conformance.Harness{
		Name: "kafka",
		Open: func(ctx context.Context) (transport.Transport, error) {
			return transport.Open(ctx, testURL(brokers))
		},
		OpenDialer: func(ctx context.Context, dial conformance.DialFunc) (transport.Transport, error) {
			u, err := url.Parse(testURL(brokers))
			if err != nil {
				return nil, err
			}
			bs, opts, err := kafka.ParseURL(u)
			if err != nil {
				return nil, err
			}
			opts.Dial = dial
			return kafka.Open(ctx, bs, opts)
		},
		// Kafka never cancels a consumer; what it does on its own is
		// rebalance: another member joins the group (taking partitions,
		// receiving and holding messages without acking them) and
		// leaves, two rebalances.
		CancelConsumers: func(ctx context.Context, topic, group string) error {
			tr, err := transport.Open(ctx, testURL(brokers))
			if err != nil {
				return err
			}
			defer tr.Close()
			s, err := tr.Subscribe(ctx, transport.Topic(topic), group, transport.SubscribeOptions{MaxInFlight: 16})
			if err != nil {
				return err
			}
			defer s.Close()
			// Stay in the group through one rebalance (rebalance_timeout
			// is 3s in the test URL); what this member receives it
			// never acks: the group redelivers it.
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			for rctx.Err() == nil {
				if _, err := s.Receive(rctx, 16); err != nil && rctx.Err() == nil {
					return err
				}
			}
			return nil
		},
		Teardown: func(ctx context.Context, prefix string) error {
			tr, err := transport.Open(ctx, testURL(brokers))
			if err != nil {
				return err
			}
			defer tr.Close()
			return teardown(ctx, tr, prefix)
		},
	})
}
