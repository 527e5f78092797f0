package rabbitmq

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

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
	if isTLSErr(err) {
		return fmt.Errorf("%w: rabbitmq: %s: %w", transport.ErrTLS, op, err)
	}
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
		return fmt.Errorf("%w: rabbitmq: %s: %w", transport.ErrUnauthorized, op, err)
	}
	return brokerErr(op, err)
}

// isTLSErr reports whether err comes from a TLS handshake that failed:
// the peer's certificate did not verify, or a TLS alert or a non-TLS
// answer ended the handshake.
func isTLSErr(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ae tls.AlertError
	var rh tls.RecordHeaderError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) ||
		errors.As(err, &ae) || errors.As(err, &rh)
}
