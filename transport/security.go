package transport

import "errors"

// Errors that mark a refused connection: not transient, so retrying with
// the same configuration does not help. Adapters wrap the broker client's
// own error with them, so errors.As still reaches it (for TLS, the
// standard library's *tls.CertificateVerificationError, whose Err is for
// example an x509.UnknownAuthorityError).
var (
	// ErrUnauthorized: the broker refused the credentials (a wrong user
	// name or password, a failed SASL exchange) or the user's access to
	// the virtual host.
	ErrUnauthorized = errors.New("switchboard: unauthorized")
	// ErrTLS: the TLS handshake failed: the broker's certificate did not
	// verify (unknown certificate authority, wrong host name, expired), or
	// the broker refused the handshake.
	ErrTLS = errors.New("switchboard: TLS handshake failed")
)
