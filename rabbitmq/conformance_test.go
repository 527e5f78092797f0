package rabbitmq

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/conformance"
	"github.com/switchboard-go/switchboard/rabbitmq/rabbitmqtest"
	"github.com/switchboard-go/switchboard/transport"
)

func TestConformance(t *testing.T) {
	u := brokerURL(t)
	conformance.Run(t, conformance.Harness{
		Name: "rabbitmq",
		Open: func(ctx context.Context) (transport.Transport, error) {
			return Open(ctx, u, nil)
		},
		OpenDialer: func(ctx context.Context, dial conformance.DialFunc) (transport.Transport, error) {
			return Open(ctx, u, &Options{
				Dial:              func(network, addr string) (net.Conn, error) { return dial(ctx, network, addr) },
				ReconnectMaxDelay: 200 * time.Millisecond,
			})
		},
		Teardown: func(ctx context.Context, prefix string) error {
			return rabbitmqtest.DeleteDeclared(ctx, u, prefix)
		},
	})
}
