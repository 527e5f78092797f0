package rabbitmq

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/transport"
)

// A URL may name several hosts of one RabbitMQ cluster, separated by
// commas: amqp://user:pass@h1:5672,h2:5672,h3:5672/vhost. They share the
// scheme, credentials, virtual host and parameters. The adapter connects
// to the first host that answers, in the URL's order; when the connection
// is lost it tries the hosts in turn, starting with the one after the
// host it was connected to, pausing with backoff (reconnect_max) after
// each round in which none answered.

// defaultPort returns the AMQP port of scheme.
func defaultPort(scheme string) string {
	if scheme == "amqps" {
		return "5671"
	}
	return "5672"
}

// splitHosts returns one URL per host of rawURL (a URL accepted by
// amqp091-go, with hosts separated by commas), in order. A URL with one
// host is returned unchanged. A host without a port gets the scheme's
// default port. An empty host in a list of several fails with an error
// matching transport.ErrInvalid.
func splitHosts(rawURL string) ([]string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: cannot parse URL: %w", transport.ErrInvalid)
	}
	if !strings.Contains(u.Host, ",") {
		return []string{rawURL}, nil
	}
	var out []string
	for _, h := range strings.Split(u.Host, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, fmt.Errorf("rabbitmq: URL %s: empty host in the host list (want host1:5672,host2:5672): %w", transport.RedactURL(u), transport.ErrInvalid)
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), defaultPort(u.Scheme))
		}
		c := *u
		c.Host = h
		out = append(out, c.String())
	}
	return out, nil
}

// hostOf returns the host:port of a URL splitHosts returned, for logs and
// errors (never the credentials).
func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "?"
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), defaultPort(u.Scheme))
	}
	return u.Host
}

// checkHosts validates every host URL of dialURL with amqp091-go's parser.
func checkHosts(dialURL string) error {
	urls, err := splitHosts(dialURL)
	if err != nil {
		return err
	}
	if len(urls) == 1 {
		return nil // OpenURL checks a single-host URL itself
	}
	u, _ := url.Parse(dialURL) // splitHosts parsed it
	hosts := strings.Split(u.Host, ",")
	for i, s := range urls {
		if _, err := amqp.ParseURI(s); err != nil {
			return fmt.Errorf("rabbitmq: host %q of the URL: %s: %w", hosts[i], redactErr(err, u), transport.ErrInvalid)
		}
	}
	return nil
}
