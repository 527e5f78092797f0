package messaging

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// respondersTTL is how long a client trusts that a service it found
// served still is, before it asks the broker again.
const respondersTTL = time.Second

// checkResponders fails with ErrNoResponders when the transport can count
// the consumers of the service's request queue (transport.ConsumerCounter)
// and counts none: a request nobody would take fails at once instead of
// waiting for its deadline. Any other outcome, a failed count included,
// lets the request go (its send reports what is wrong). A count found
// positive is trusted for respondersTTL.
func (c *Client) checkResponders(ctx context.Context, service string) error {
	cc, ok := c.t.(transport.ConsumerCounter)
	if !ok || ctx.Err() != nil {
		return nil
	}
	if at, ok := c.served.Load(service); ok && time.Since(at.(time.Time)) < respondersTTL {
		return nil
	}
	if c.enter() != nil {
		return nil // closed: the request reports it
	}
	defer c.ops.Done()
	q := c.requestQueue(service)
	n, err := cc.Consumers(ctx, q)
	switch {
	case errors.Is(err, transport.ErrNotFound):
		return noResponders(err, service)
	case err != nil:
		return nil
	case n == 0:
		return fmt.Errorf("%w: nobody serves %s now (its request queue has no consumer)", ErrNoResponders, service)
	}
	c.served.Store(service, time.Now())
	return nil
}
