package kafka_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchboard-go/switchboard/internal/testpki"
	"github.com/switchboard-go/switchboard/transport"
)

// TestTLSAndSASL runs kfake clusters with a TLS listener (certificates the
// test generates) and SASL (PLAIN and SCRAM-SHA-512 users), and connects
// through the URL options tls_ca and sasl: verification on succeeds and
// messages go round trip through a consumer group; a certificate
// authority that did not sign the brokers' certificate fails with
// ErrTLS; a wrong password fails with ErrUnauthorized.
func TestTLSAndSASL(t *testing.T) {
	pki := testpki.New(t, t.TempDir())
	serverTLS := &tls.Config{Certificates: []tls.Certificate{pki.Server}, MinVersion: tls.VersionTLS12}

	roundTrip := func(t *testing.T, rawURL string) {
		t.Helper()
		ctx := ctxT(t, 30*time.Second)
		tr, err := transport.Open(ctx, rawURL)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer tr.Close()
		if err := tr.(transport.Pinger).Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		to := transport.Topic(unique("sec"))
		s, err := tr.Subscribe(ctx, to, "g", transport.SubscribeOptions{MaxInFlight: 8})
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		defer s.Close()
		send(t, tr, to, msg("sec-1", "k", "secured"))
		got := recv(t, s, 1, true)
		if string(got[0].Body) != "secured" {
			t.Fatalf("got %q", got[0].Body)
		}
	}
	openErr := func(t *testing.T, rawURL string) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		tr, err := transport.Open(ctx, rawURL)
		if err == nil {
			_ = tr.Close()
			t.Fatalf("%s: connected", rawURL)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("refused after %v: a refusal is not retried as if transient", d.Round(time.Millisecond))
		}
		return err
	}
	hostList := func(c *kfake.Cluster) string { return strings.Join(c.ListenAddrs(), ",") }
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return "?" + v.Encode() + "&" + fastOptions()
	}

	t.Run("TLS", func(t *testing.T) {
		c, _ := faultCluster(t, kfake.TLS(serverTLS))
		roundTrip(t, "kafka://"+hostList(c)+q("tls_ca", pki.CAFile))
		err := openErr(t, "kafka://"+hostList(c)+q("tls_ca", pki.OtherCAFile))
		var cv *tls.CertificateVerificationError
		if !errors.Is(err, transport.ErrTLS) || !errors.As(err, &cv) || errors.Is(err, transport.ErrUnavailable) {
			t.Fatalf("wrong CA: want ErrTLS wrapping *tls.CertificateVerificationError, not ErrUnavailable; got %v", err)
		}
		t.Logf("wrong CA: %v", err)
	})

	for _, tc := range []struct{ mech, method, user string }{
		{"plain", "PLAIN", "plain-user"},
		{"scram-sha-512", "SCRAM-SHA-512", "scram-user"},
	} {
		t.Run("SASL-"+tc.method, func(t *testing.T) {
			c, _ := faultCluster(t, kfake.TLS(serverTLS), kfake.EnableSASL(), kfake.Superuser(tc.method, tc.user, "right-sekrit"))
			good := "kafka://" + tc.user + ":right-sekrit@" + hostList(c) + q("sasl", tc.mech, "tls_ca", pki.CAFile)
			roundTrip(t, good)
			bad := "kafka://" + tc.user + ":wrong-sekrit@" + hostList(c) + q("sasl", tc.mech, "tls_ca", pki.CAFile)
			err := openErr(t, bad)
			if !errors.Is(err, transport.ErrUnauthorized) || errors.Is(err, transport.ErrInvalid) || strings.Contains(err.Error(), "sekrit") {
				t.Fatalf("wrong password: want ErrUnauthorized (not ErrInvalid), without the password; got %v", err)
			}
			t.Logf("wrong password: %v", err)
		})
	}
}
