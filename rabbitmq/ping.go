package rabbitmq

import (
	"context"
	"fmt"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.Pinger = (*Transport)(nil)

// Ping implements transport.Pinger: it opens a channel on the current
// connection and closes it (one round trip, which a broker that accepts
// TCP but no longer answers AMQP fails), bounded by ctx. While the
// adapter is reconnecting (to the same host or the next host of the URL)
// Ping fails at once with an error matching transport.ErrUnavailable that
// names the last dial error.
func (t *Transport) Ping(ctx context.Context) error {
	if t.isClosed() {
		return errClosed("transport")
	}
	conn, _ := t.m.current()
	if conn == nil || conn.IsClosed() {
		t.m.mu.Lock()
		last := t.m.lastErr
		t.m.mu.Unlock()
		if last != nil {
			return fmt.Errorf("rabbitmq: ping: reconnecting (last error: %v): %w", last, transport.ErrUnavailable)
		}
		return fmt.Errorf("rabbitmq: ping: reconnecting: %w", transport.ErrUnavailable)
	}
	done := make(chan error, 1)
	go func() {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return brokerErr("ping", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: ping: no answer: %w: %w", transport.ErrUnavailable, ctx.Err())
	}
}
