package inmem_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/conformance"
	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	conformance.Run(t, conformance.Harness{
		Name: "inmem",
		Open: func(context.Context) (transport.Transport, error) { return b.Transport(), nil },
		// A broker-side cancel: the group's queue is deleted.
		CancelConsumers: func(_ context.Context, topic, group string) error { return b.CancelConsumers(topic, group) },
	})
}
