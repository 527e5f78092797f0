package messaging

import (
	"context"
	"strings"

	"github.com/switchboard-go/switchboard/transport"
)

// Ping reports whether the broker answers now, for readiness probes. It
// makes at most one round trip, bounded by ctx (give it a short deadline,
// such as one second), and never creates or changes anything on the
// broker.
//
// What a nil error means per transport: mem://, the client is open;
// kafka://, a bootstrap broker answered a metadata request; amqp:// and
// amqps://, the connection is open and the broker answered a channel
// open/close round trip (while the adapter is reconnecting to the next
// host of the URL, Ping fails); sqs://, SQS answered a ListQueues call
// limited to one queue.
//
// Errors: ErrClosed after Close or Shutdown; an error matching
// ErrUnavailable when the broker cannot be reached (or the adapter is
// reconnecting); ErrUnauthorized or ErrTLS when the broker refuses the
// credentials or the certificate; ctx's error when ctx ends first. A
// transport that does not implement transport.Pinger (a third-party
// adapter) is reported reachable while the client is open.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.enter(); err != nil {
		return err
	}
	defer c.ops.Done()
	p, ok := c.t.(transport.Pinger)
	if !ok {
		return nil
	}
	if err := p.Ping(ctx); err != nil {
		if strings.Contains(err.Error(), "ping") {
			return transport.Layer(err, "switchboard") // the adapter said "<name>: ping"
		}
		return transport.Layer(err, "switchboard: ping "+c.caps.Name)
	}
	return nil
}
