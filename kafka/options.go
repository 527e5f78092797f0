package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/switchboard-go/switchboard/transport"
)

// Scheme is the URL scheme this package registers: kafka://host:9092,...
const Scheme = "kafka"

func init() {
	transport.Register(Scheme, func(ctx context.Context, u *url.URL) (transport.Transport, error) {
		brokers, opts, err := ParseURL(u)
		if err != nil {
			return nil, err
		}
		return Open(ctx, brokers, opts)
	})
}

// Balancer names accepted by Options.Balancer and the "balancer" URL option.
const (
	// BalancerCRC32 hashes keys with CRC-32 (IEEE), like librdkafka's
	// default "consistent_random" partitioner (and so kcat, confluent-kafka-go,
	// confluent-kafka-python, node-rdkafka). It is the default.
	BalancerCRC32 = "crc32"
	// BalancerMurmur2 hashes keys with murmur2, like the Java client's
	// default partitioner (and librdkafka's "murmur2_random").
	BalancerMurmur2 = "murmur2"
)

// Options configures a Transport. The zero value of every field selects its
// default.
type Options struct {
	// ClientID is sent to the brokers and starts the names of reply
	// inboxes. Default "switchboard".
	ClientID string
	// TLS, when not nil, makes every connection use TLS.
	TLS *tls.Config
	// SASL, when not nil, authenticates every connection
	// (see github.com/segmentio/kafka-go/sasl/plain and sasl/scram).
	SASL sasl.Mechanism
	// Partitions is the number of partitions of the topics and queues the
	// adapter creates. Default 3.
	Partitions int
	// Replication is the replication factor of the topics the adapter
	// creates; -1 (the default) means the broker's default.replication.factor.
	Replication int
	// Balancer maps keys to partitions: BalancerCRC32 (default) or
	// BalancerMurmur2.
	Balancer string
	// MaxMessageBytes is the broker's (and topics') message.max.bytes.
	// Default 1048588, Kafka's default. Capabilities.MaxMessageSize is
	// derived from it, leaving room for the record and header overhead.
	MaxMessageBytes int
	// BatchTimeout is the producer's linger: how long a partition's
	// batch waits for more records before it is sent. Default 0: no
	// linger; a record for a partition with no produce request in flight
	// is sent at once, and the records that arrive while one is in flight
	// leave together in the next request (one request in flight per
	// partition), so batches fill under load without a linger.
	BatchTimeout time.Duration
	// SessionTimeout is the consumer group session timeout. Default 10s.
	SessionTimeout time.Duration
	// HeartbeatInterval is the consumer group heartbeat interval; it bounds
	// how fast members notice a rebalance. Default 1s.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance. Default 10s.
	RebalanceTimeout time.Duration
	// DrainTimeout is how long a member whose partitions are being revoked
	// waits for the messages it delivered to be acknowledged before it
	// commits and gives them up (and rejoins the group: the new owners
	// start only then, so a key's handlers never overlap across members
	// unless handling outlasts it). Keep it below RebalanceTimeout, after
	// which the coordinator drops the member. Default 8s.
	DrainTimeout time.Duration
	// MaxWait is the longest a fetch waits at the broker for new data; it
	// also bounds how long closing a subscription waits. Default 500ms.
	MaxWait time.Duration
	// MetadataTTL is how long cluster metadata is cached. Default 1s.
	MetadataTTL time.Duration
	// DialTimeout bounds connecting to a broker. Default 5s.
	DialTimeout time.Duration
	// Dial, when set, opens every TCP connection to the brokers (for
	// tests that inject network faults); default a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// JoinBackoff is the pause before rejoining a group after an error.
	// Default 250ms.
	JoinBackoff time.Duration
	// Logger receives the adapter's and kafka-go's logs. Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.ClientID == "" {
		o.ClientID = "switchboard"
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.Replication == 0 {
		o.Replication = -1
	}
	if o.Balancer == "" {
		o.Balancer = BalancerCRC32
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 1048588
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.SessionTimeout, 10*time.Second)
	def(&o.HeartbeatInterval, time.Second)
	def(&o.RebalanceTimeout, 10*time.Second)
	def(&o.DrainTimeout, 8*time.Second)
	def(&o.MaxWait, 500*time.Millisecond)
	def(&o.MetadataTTL, time.Second)
	def(&o.DialTimeout, 5*time.Second)
	def(&o.JoinBackoff, 250*time.Millisecond)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// urlParams lists the accepted URL query parameters, for error messages.
var urlParams = map[string]string{
	"client_id":          "client ID sent to brokers",
	"tls":                "true|false",
	"tls_ca":             "path of a PEM CA bundle (implies tls)",
	"tls_cert":           "path of a PEM client certificate (implies tls)",
	"tls_key":            "path of the PEM key of tls_cert",
	"tls_server_name":    "server name to verify",
	"tls_insecure":       "true to skip certificate verification",
	"sasl":               "plain|scram-sha-256|scram-sha-512 (user and password from the URL's user info)",
	"partitions":         "partitions of created topics (default 3)",
	"replication":        "replication factor of created topics (default -1: broker default)",
	"balancer":           "crc32 (default, librdkafka-compatible)|murmur2 (Java-compatible)",
	"max_message_bytes":  "broker message.max.bytes (default 1048588)",
	"batch_timeout":      "producer linger (default 0: send at once, batch what arrives while a request is in flight)",
	"session_timeout":    "group session timeout (default 10s)",
	"heartbeat_interval": "group heartbeat interval (default 1s)",
	"rebalance_timeout":  "group rebalance timeout (default 10s)",
	"drain_timeout":      "wait for acks when partitions are revoked (default 8s)",
	"max_wait":           "fetch max wait (default 500ms)",
	"metadata_ttl":       "metadata cache TTL (default 1s)",
	"dial_timeout":       "connect timeout (default 5s)",
	"join_backoff":       "pause before rejoining a group after an error (default 250ms)",
}

func acceptedParams() string {
	names := make([]string, 0, len(urlParams))
	for k := range urlParams {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ParseURL parses kafka://[user:password@]host1:9092,host2:9092?options
// into broker addresses and Options. See the package documentation for the
// options. Errors match transport.ErrInvalid and never hold the password.
func ParseURL(u *url.URL) ([]string, Options, error) {
	var o Options
	bad := func(format string, args ...any) ([]string, Options, error) {
		return nil, Options{}, fmt.Errorf("%w: kafka URL: "+format, append([]any{transport.ErrInvalid}, args...)...)
	}
	if !strings.EqualFold(u.Scheme, Scheme) {
		return bad("scheme %q is not %q", u.Scheme, Scheme)
	}
	var brokers []string
	for _, h := range strings.Split(u.Host, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), "9092")
		}
		if host, _, _ := net.SplitHostPort(h); host == "" {
			return bad("broker address %q has no host (want kafka://host:9092,host2:9092)", h)
		}
		if err := transport.CheckPort(h); err != nil {
			return bad("broker address: %v", err)
		}
		brokers = append(brokers, h)
	}
	if len(brokers) == 0 {
		return bad("no broker address (want kafka://host:9092,host2:9092)")
	}
	if u.Path != "" && u.Path != "/" {
		return bad("unexpected path %q", u.Path)
	}
	q, err := transport.Query(u)
	if err != nil {
		return bad("%v", err)
	}
	for k, vs := range q {
		if _, ok := urlParams[k]; !ok {
			return bad("unknown option %q; accepted: %s", k, acceptedParams())
		}
		if len(vs) != 1 {
			return bad("option %q given %d times", k, len(vs))
		}
	}
	o.ClientID = q.Get("client_id")
	dur := func(name string, d *time.Duration) error {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		x, err := time.ParseDuration(v)
		if name == "batch_timeout" && err == nil && x == 0 {
			return nil // the default: no linger
		}
		if err != nil || x <= 0 {
			return fmt.Errorf("%w: kafka URL: option %s=%q: want a positive duration such as 500ms", transport.ErrInvalid, name, v)
		}
		*d = x
		return nil
	}
	for name, d := range map[string]*time.Duration{
		"batch_timeout": &o.BatchTimeout, "session_timeout": &o.SessionTimeout,
		"heartbeat_interval": &o.HeartbeatInterval, "rebalance_timeout": &o.RebalanceTimeout,
		"drain_timeout": &o.DrainTimeout, "max_wait": &o.MaxWait, "metadata_ttl": &o.MetadataTTL,
		"dial_timeout": &o.DialTimeout, "join_backoff": &o.JoinBackoff,
	} {
		if err := dur(name, d); err != nil {
			return nil, Options{}, err
		}
	}
	integer := func(name string, min int, p *int) error {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		x, err := strconv.Atoi(v)
		if err != nil || x < min || x == 0 {
			return fmt.Errorf("%w: kafka URL: option %s=%q: want an integer >= %d (and not 0)", transport.ErrInvalid, name, v, min)
		}
		*p = x
		return nil
	}
	if err := integer("partitions", 1, &o.Partitions); err != nil {
		return nil, Options{}, err
	}
	if err := integer("replication", -1, &o.Replication); err != nil {
		return nil, Options{}, err
	}
	if err := integer("max_message_bytes", 1024, &o.MaxMessageBytes); err != nil {
		return nil, Options{}, err
	}
	switch b := strings.ToLower(q.Get("balancer")); b {
	case "", BalancerCRC32, BalancerMurmur2:
		o.Balancer = b
	default:
		return bad("option balancer=%q: want crc32 or murmur2", q.Get("balancer"))
	}

	// TLS.
	useTLS := false
	if v := q.Get("tls"); v != "" {
		b, err := transport.ParseBool(v)
		if err != nil {
			return bad("option tls=%q: want true or false", v)
		}
		useTLS = b
	}
	if q.Get("tls_ca") != "" || q.Get("tls_cert") != "" || q.Get("tls_insecure") != "" || q.Get("tls_server_name") != "" {
		useTLS = true
	}
	if useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: q.Get("tls_server_name")}
		if v := q.Get("tls_insecure"); v != "" {
			b, err := transport.ParseBool(v)
			if err != nil {
				return bad("option tls_insecure=%q: want true or false", v)
			}
			cfg.InsecureSkipVerify = b
		}
		if p := q.Get("tls_ca"); p != "" {
			pem, err := os.ReadFile(p)
			if err != nil {
				return bad("option tls_ca: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return bad("option tls_ca: no PEM certificate in %q", p)
			}
			cfg.RootCAs = pool
		}
		if c, k := q.Get("tls_cert"), q.Get("tls_key"); c != "" || k != "" {
			if c == "" || k == "" {
				return bad("options tls_cert and tls_key go together")
			}
			cert, err := tls.LoadX509KeyPair(c, k)
			if err != nil {
				return bad("options tls_cert/tls_key: cannot load the key pair from %q", c)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		o.TLS = cfg
	} else if q.Get("tls_key") != "" {
		return bad("option tls_key needs tls_cert")
	}

	// SASL: credentials come from the user info only.
	mech := strings.ToLower(q.Get("sasl"))
	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	switch mech {
	case "":
		if u.User != nil {
			return bad("user info given without sasl=plain|scram-sha-256|scram-sha-512")
		}
	case "plain":
		o.SASL = plain.Mechanism{Username: user, Password: pass}
	case "scram-sha-256", "scram-sha-512":
		algo := scram.SHA256
		if mech == "scram-sha-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, user, pass)
		if err != nil {
			return bad("sasl=%s: cannot set up the mechanism", mech)
		}
		o.SASL = m
	default:
		return bad("option sasl=%q: want plain, scram-sha-256 or scram-sha-512", q.Get("sasl"))
	}
	if mech != "" && user == "" {
		return bad("sasl=%s needs a user name in the URL (kafka://user:password@host:9092)", mech)
	}
	return brokers, o, nil
}

// dialer returns the kafka-go Dialer used by consumer groups and readers.
func (o *Options) dialer() *kafkago.Dialer {
	return &kafkago.Dialer{
		ClientID:      o.ClientID,
		Timeout:       o.DialTimeout,
		DualStack:     true,
		TLS:           o.TLS,
		SASLMechanism: o.SASL,
		DialFunc:      o.Dial,
	}
}

// kafkaLogger adapts slog to kafka-go's Logger.
type kafkaLogger struct {
	l     *slog.Logger
	level slog.Level
}

func (k kafkaLogger) Printf(format string, args ...any) {
	if k.l.Enabled(context.Background(), k.level) {
		k.l.Log(context.Background(), k.level, "kafka-go: "+fmt.Sprintf(format, args...))
	}
}
