package sqs_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

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
		Teardown: func(ctx context.Context, prefix string) error {
			return deletePrefix(ctx, ep, prefix)
		},
	})
}
