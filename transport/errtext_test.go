package transport_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/switchboard-go/switchboard/transport"
)

var errNative = errors.New("broker said no")

// R113: Layer prints "switchboard: " once per chain and keeps every
// wrapped error reachable.
func TestLayer(t *testing.T) {
	other := errors.New("switchboard: no responders")
	adapter := fmt.Errorf("kafka: send to queue %q: %w: %w", "p.rpc", transport.ErrNotFound, errNative)
	err := transport.Layer(transport.Layer(adapter, "switchboard: send request"), "switchboard: no responders", other)
	want := `switchboard: no responders: send request: kafka: send to queue "p.rpc": destination not found: broker said no`
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
	for _, target := range []error{transport.ErrNotFound, errNative, other} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(%v, %v) = false", err, target)
		}
	}
	if transport.Layer(nil, "x") != nil {
		t.Error("Layer(nil) is not nil")
	}
	if got := transport.Layer(adapter, "").Error(); got != `kafka: send to queue "p.rpc": switchboard: destination not found: broker said no` {
		t.Errorf("Layer with no text: %s", got)
	}
}

func TestNames(t *testing.T) {
	err := errors.New("sqs: GetQueueUrl prices_drpc.fifo: not found")
	for name, want := range map[string]bool{"prices.rpc": true, "prices_drpc.fifo": true, "orders": false, "": false} {
		if got := transport.Names(err, name); got != want {
			t.Errorf("Names(%q) = %v, want %v", name, got, want)
		}
	}
}
