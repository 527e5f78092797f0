package rabbitmq

import (
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/internal/tlserr"
	"github.com/switchboard-go/switchboard/transport"
)

// dialErr wraps the error of dialing the host of hostURL: a failed TLS
// handshake is marked transport.ErrTLS, refused credentials (AMQP 403
// ACCESS_REFUSED, amqp091-go's ErrCredentials) transport.ErrUnauthorized;
// anything else as brokerErr marks it. The message names the host, never
// the credentials; errors.As still reaches the crypto/tls or amqp091-go
// error.
func dialErr(hostURL string, err error) error {
	op := "dial " + hostOf(hostURL)
	if tlserr.Handshake(err) {
		return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrTLS, err)
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
		return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrUnauthorized, err)
	}
	return brokerErr(op, err)
}
