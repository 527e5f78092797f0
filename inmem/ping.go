package inmem

import (
	"context"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.Pinger = (*conn)(nil)

// Ping implements transport.Pinger: the in-memory broker is always
// reachable while the transport is open. It fails with an error matching
// ErrClosed after Close, and with ctx's error when ctx has ended.
func (c *conn) Ping(ctx context.Context) error {
	if err := c.check(); err != nil {
		return err
	}
	return ctx.Err()
}
