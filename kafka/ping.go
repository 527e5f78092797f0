package kafka

import (
	"context"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.Pinger = (*Transport)(nil)

// Ping implements transport.Pinger with one metadata request for no
// topic, sent to a bootstrap broker that answers (kafka-go tries them in
// turn). Errors are marked like Open's: transport.ErrUnavailable when no
// broker answers, transport.ErrUnauthorized when SASL fails,
// transport.ErrTLS when the brokers' certificate does not verify.
func (t *Transport) Ping(ctx context.Context) error {
	if t.isClosed() {
		return t.errClosed()
	}
	_, err := t.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{}})
	return t.wrapConn("ping", err)
}
