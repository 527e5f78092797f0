// Package testpki generates, for tests, a certificate authority and a
// server certificate it signed, for localhost and 127.0.0.1, plus a second
// authority that signed nothing (to prove that verification fails), and
// writes them as PEM files.
package testpki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI holds the generated files and pools. Certificates are valid from an
// hour ago for a day; keys are ECDSA P-256.
type PKI struct {
	// CAFile, CertFile and KeyFile are PEM files: the authority, the
	// server certificate (DNS localhost, IP 127.0.0.1) and its PKCS #8 key.
	CAFile, CertFile, KeyFile string
	// OtherCAFile is an authority that did not sign the server certificate.
	OtherCAFile string
	// CAPool and OtherCAPool hold one authority each.
	CAPool, OtherCAPool *x509.CertPool
	// Server is the server certificate and key, for a tls.Config.
	Server tls.Certificate
}

// New generates a PKI and writes its files to dir.
func New(t testing.TB, dir string) *PKI {
	t.Helper()
	ca, caKey, caPEM := newCA(t, "switchboard test CA")
	_, _, otherPEM := newCA(t, "some other CA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b *pem.Block) string {
		var buf bytes.Buffer
		_ = pem.Encode(&buf, b)
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	certPEM := &pem.Block{Type: "CERTIFICATE", Bytes: der}
	keyPEM := &pem.Block{Type: "PRIVATE KEY", Bytes: kder}
	p := &PKI{
		CAFile:      write("ca.pem", caPEM),
		OtherCAFile: write("other-ca.pem", otherPEM),
		CertFile:    write("server.pem", certPEM),
		KeyFile:     write("server-key.pem", keyPEM),
		CAPool:      x509.NewCertPool(),
		OtherCAPool: x509.NewCertPool(),
	}
	p.CAPool.AppendCertsFromPEM(pem.EncodeToMemory(caPEM))
	p.OtherCAPool.AppendCertsFromPEM(pem.EncodeToMemory(otherPEM))
	p.Server, err = tls.X509KeyPair(pem.EncodeToMemory(certPEM), pem.EncodeToMemory(keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey, *pem.Block) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, &pem.Block{Type: "CERTIFICATE", Bytes: der}
}
