package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/transport"
)

// wrapConn is wrap for errors of connecting to the brokers: a failed TLS
// handshake is marked transport.ErrTLS and a refused SASL exchange
// transport.ErrUnauthorized (neither is transient); anything else is
// marked as wrap marks it. The kafka-go or crypto/tls error stays in the
// chain for errors.As.
func (t *Transport) wrapConn(op string, err error) error {
	if err == nil {
		return nil
	}
	if isTLSErr(err) {
		return fmt.Errorf("kafka: %s: %w: %w", op, transport.ErrTLS, err)
	}
	if errors.Is(err, kafkago.SASLAuthenticationFailed) || errors.Is(err, kafkago.UnsupportedSASLMechanism) ||
		errors.Is(err, kafkago.IllegalSASLState) {
		return fmt.Errorf("kafka: %s: %w: %w", op, transport.ErrUnauthorized, err)
	}
	return t.wrap(op, err)
}

// isTLSErr reports whether err comes from a TLS handshake that failed.
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
