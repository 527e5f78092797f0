package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// A readiness probe: the service is ready while its broker answers.
func ExampleClient_Ping() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	ready := func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := c.Ping(ctx); err != nil {
			http.Error(w, "broker unreachable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", ready) // serve mux with http.ListenAndServe

	fmt.Println(c.Ping(ctx))
	c.Close()
	fmt.Println(errors.Is(c.Ping(ctx), messaging.ErrClosed))
	// Output:
	// <nil>
	// true
}

// noPing is a transport that does not implement transport.Pinger.
type noPing struct{ transport.Transport }

// failingPing is a transport whose Ping always fails.
type failingPing struct{ transport.Transport }

func (failingPing) Ping(context.Context) error {
	return fmt.Errorf("%w: test broker down", transport.ErrUnavailable)
}

func TestPingDelegates(t *testing.T) {
	ctx := context.Background()
	open := func(wrap func(transport.Transport) transport.Transport) *messaging.Client {
		tr, err := transport.Open(ctx, "mem://")
		if err != nil {
			t.Fatal(err)
		}
		c, err := messaging.New(wrap(tr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if err := open(func(tr transport.Transport) transport.Transport { return noPing{tr} }).Ping(ctx); err != nil {
		t.Errorf("a transport without Ping: want nil, got %v", err)
	}
	err := open(func(tr transport.Transport) transport.Transport { return failingPing{tr} }).Ping(ctx)
	if !errors.Is(err, messaging.ErrUnavailable) {
		t.Errorf("failing Ping: want ErrUnavailable, got %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := open(func(tr transport.Transport) transport.Transport { return tr }).Ping(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Ping with an ended context: want context.Canceled, got %v", err)
	}
}
