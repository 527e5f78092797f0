// Package tlserr tells the adapters' TLS handshake failures apart from
// other connection errors, so that each marks them transport.ErrTLS.
package tlserr

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// Handshake reports whether err comes from a TLS handshake that failed:
// the peer's certificate did not verify (unknown authority, wrong host
// name, invalid certificate), or a TLS alert or a non-TLS answer ended the
// handshake.
func Handshake(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var ae tls.AlertError
	var rh tls.RecordHeaderError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci) ||
		errors.As(err, &ae) || errors.As(err, &rh)
}
