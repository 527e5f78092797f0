package conformance

import (
	"context"
	"errors"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// healthCases are the Health cases: Client.Ping says whether the broker
// answers, for readiness probes.
var healthCases = []testCase{
	{"Health", "PingFollowsBroker", healthPingFollowsBroker},
}

// healthPingFollowsBroker proves R106: Ping returns nil while the broker
// answers, a typed error (ErrUnavailable, or the deadline of the ping's
// context) while the network to it is cut, nil again once the network is
// back, without the client being reopened, and ErrClosed after Close.
func healthPingFollowsBroker(e *env) {
	f, open := e.faultyClients()
	c := open()
	ping := func() error {
		ctx, cancel := context.WithTimeout(e.ctx, 2*time.Second)
		defer cancel()
		return c.Ping(ctx)
	}
	if err := ping(); err != nil {
		e.Fatalf("Ping on a healthy broker: %v", err)
	}
	f.Cut()
	// A connection may still look open for a moment after the cut (the
	// adapter notices on its next read): poll, bounded by the case.
	var err error
	for err = ping(); err == nil; err = ping() {
		select {
		case <-e.ctx.Done():
			e.Fatalf("Ping kept returning nil while the network was cut")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !typedFailure(err) {
		e.Errorf("Ping while cut: want ErrUnavailable or a deadline, got %v", err)
	}
	f.Restore()
	for err = ping(); err != nil; err = ping() {
		select {
		case <-e.ctx.Done():
			e.Fatalf("Ping never answered again after the network came back: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	c.Close()
	if err := c.Ping(e.ctx); !errors.Is(err, messaging.ErrClosed) {
		e.Errorf("Ping after Close: want ErrClosed, got %v", err)
	}
}

// Ping makes an emulated-faults transport fail while cut, like a real
// one; otherwise it asks the transport underneath.
func (t *faultyTransport) Ping(ctx context.Context) error {
	if err := t.f.gate(ctx, false); err != nil {
		return err
	}
	if p, ok := t.Transport.(transport.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}
