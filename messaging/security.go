package messaging

import "github.com/switchboard-go/switchboard/transport"

// Errors for a connection the broker refuses; they are not transient (see
// package transport). Open and Ping return them; errors.As also reaches
// the broker client's own error (for TLS, *tls.CertificateVerificationError).
var (
	// ErrUnauthorized: the broker refused the credentials (a wrong user
	// name or password, a failed SASL exchange).
	ErrUnauthorized = transport.ErrUnauthorized
	// ErrTLS: the TLS handshake failed, for example because the broker's
	// certificate is not signed by a trusted certificate authority.
	ErrTLS = transport.ErrTLS
)
