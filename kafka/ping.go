package kafka

import (
	"context"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.Pinger = (*Transport)(nil)

// Ping implements transport.Pinger with one ApiVersions request, a round
// trip to a broker of the cluster (kafka-go answers metadata requests from
// its cache, so they would not tell). Errors are marked like Open's: transport.ErrUnavailable when no
// broker answers, transport.ErrUnauthorized when SASL fails,
// transport.ErrTLS when the brokers' certificate does not verify.
func (t *Transport) Ping(ctx context.Context) error {
	if t.isClosed() {
		return t.errClosed()
	}
	_, err := t.client.ApiVersions(ctx, &kafkago.ApiVersionsRequest{})
	return t.wrapConn("ping", err)
}
