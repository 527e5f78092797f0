package rabbitmq

import (
	"context"
	"testing"

	"github.com/switchboard-go/switchboard/conformance"
	"github.com/switchboard-go/switchboard/transport"
)

func TestConformance(t *testing.T) {
	u := brokerURL(t)
	conformance.Run(t, conformance.Harness{
		Name: "rabbitmq",
		Open: func(ctx context.Context) (transport.Transport, error) {
			return Open(ctx, u, nil)
		},
		Teardown: func(ctx context.Context, prefix string) error {
			tr, err := Open(ctx, u, nil)
			if err != nil {
				return err
			}
			defer tr.Close()
			return tr.DeleteDeclared(ctx, prefix)
		},
	})
}
