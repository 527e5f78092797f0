package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/internal/tlserr"
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
	if tlserr.Handshake(err) {
		return fmt.Errorf("kafka: %s: %w: %w", op, transport.ErrTLS, err)
	}
	if isSASLErr(err) {
		return fmt.Errorf("kafka: %s: %w: %w", op, transport.ErrUnauthorized, err)
	}
	// Brokers may refuse credentials by closing the connection (kafka-go's
	// pooled transport then reports only EOF): ask one broker again
	// through kafka-go's Dialer, which reports a connection closed during
	// the SASL exchange as SASLAuthenticationFailed.
	if _, serr := t.saslChecked(nil, err); isSASLErr(serr) {
		return fmt.Errorf("kafka: %s: %w: %w", op, transport.ErrUnauthorized, serr)
	}
	return t.wrap(op, err)
}

// saslChecked passes r and err through, except that an EOF with SASL
// configured becomes the SASL refusal probeSASL finds, if any, so that
// Open's retries stop at once on refused credentials.
func (t *Transport) saslChecked(r *kafkago.MetadataResponse, err error) (*kafkago.MetadataResponse, error) {
	if err != nil && t.opts.SASL != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		if derr := t.probeSASL(); isSASLErr(derr) {
			return r, derr
		}
	}
	return r, err
}

func isSASLErr(err error) bool {
	return errors.Is(err, kafkago.SASLAuthenticationFailed) || errors.Is(err, kafkago.UnsupportedSASLMechanism) ||
		errors.Is(err, kafkago.IllegalSASLState)
}

// probeSASL dials the bootstrap brokers in turn, with TLS and SASL, until
// one connection opens, and returns the first error (nil when one opened).
func (t *Transport) probeSASL() error {
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.DialTimeout)
	defer cancel()
	var first error
	for _, b := range t.brokers {
		c, err := t.dialer.DialContext(ctx, "tcp", b)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if first == nil {
			first = err
		}
		if isSASLErr(err) || ctx.Err() != nil {
			return err
		}
	}
	return first
}
