package kafka_test

import (
	"context"
	"net/url"
	"testing"

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
