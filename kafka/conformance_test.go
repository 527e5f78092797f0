package kafka_test

import (
	"context"
	"testing"

	"github.com/switchboard-go/switchboard/conformance"
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
