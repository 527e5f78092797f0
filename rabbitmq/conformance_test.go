package rabbitmq

import (
	"context"
	"net"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

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
		// The broker cancels consumers when their queue is deleted: a
		// second connection deletes the group's partition queues.
		CancelConsumers: func(ctx context.Context, topic, group string) error {
			tr, err := Open(ctx, u, nil)
			if err != nil {
				return err
			}
			defer tr.Close()
			conn, err := amqp.Dial(u)
			if err != nil {
				return err
			}
			defer conn.Close()
			ch, err := conn.Channel()
			if err != nil {
				return err
			}
			for _, q := range tr.PartitionQueueNames(topic, group) {
				if _, err := ch.QueueDelete(q, false, false, false); err != nil {
					return err
				}
			}
			return nil
		},
		Teardown: func(ctx context.Context, prefix string) error {
			return rabbitmqtest.DeleteDeclared(ctx, u, prefix)
		},
	})
}
