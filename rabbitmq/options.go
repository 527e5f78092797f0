package rabbitmq

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// Queue types accepted by the queue_type option.
const (
	// QueueTypeQuorum makes consumer-group queues and point-to-point queues
	// quorum queues: replicated, durable, with a broker-side delivery count.
	// It is the default.
	QueueTypeQuorum = "quorum"
	// QueueTypeClassic makes them durable classic queues; deliveries then
	// carry no delivery count (Message.DeliveryCount is 0).
	QueueTypeClassic = "classic"
)

// Defaults of the options.
const (
	// DefaultPublishWindow is the default number of published messages
	// awaiting a publisher confirm, per AMQP channel.
	DefaultPublishWindow = 1000
	// DefaultMaxMessageSize is the default largest Message.Size accepted
	// (16 MiB). RabbitMQ's own default limit (max_message_size) is 128 MiB.
	DefaultMaxMessageSize = 16 << 20
)

// Options configure a Transport opened with Open. The zero value is valid.
// URL query parameters override the corresponding fields.
type Options struct {
	// Prefix is prepended to every exchange and queue name the transport
	// declares or uses (URL parameter "prefix").
	Prefix string
	// Prefetch, when positive, is the QoS prefetch of every subscription,
	// overriding SubscribeOptions.MaxInFlight (URL parameter "prefetch").
	Prefetch int
	// QueueType is QueueTypeQuorum (default) or QueueTypeClassic (URL
	// parameter "queue_type").
	QueueType string
	// QuorumInitialGroupSize, when positive, is the number of replicas
	// (members) of each quorum queue the adapter declares: its
	// x-quorum-initial-group-size argument (URL parameter
	// "quorum_initial_group_size"). Zero leaves it to the broker, which
	// places a member on every node of the cluster (RabbitMQ 3.x; at most
	// the number of nodes). Use an odd number: a quorum queue stays
	// available while a majority of its members runs. The queue's leader
	// starts on the node the declaring connection is on. It applies only
	// to queues that do not exist yet: RabbitMQ refuses to redeclare a
	// queue with another value (transport.ErrInvalid).
	QuorumInitialGroupSize int
	// PublishWindow is the most messages awaiting a publisher confirm per
	// channel (URL parameter "publish_window"); default DefaultPublishWindow.
	PublishWindow int
	// MaxMessageSize is the largest Message.Size accepted (URL parameter
	// "max_message_size"); default DefaultMaxMessageSize. It must not exceed
	// the broker's max_message_size.
	MaxMessageSize int
	// ReconnectMaxDelay caps the backoff between reconnection attempts
	// (URL parameter "reconnect_max", a Go duration); default 5s.
	ReconnectMaxDelay time.Duration
	// Dial, when set, opens the TCP connections to the broker (for tests
	// that inject network faults); default amqp091-go's dialer.
	Dial func(network, addr string) (net.Conn, error)
	// TLSConfig is used for amqps URLs; nil builds one from the URL's
	// cacertfile, certfile, keyfile and server_name_indication parameters.
	TLSConfig *tls.Config
	// Logger receives reconnection events; default: discard.
	Logger *slog.Logger
	// ConnectionName is shown in the management UI; default "switchboard".
	ConnectionName string
}

// Our own URL parameters; they are removed before the URL reaches amqp091-go.
var ownParams = map[string]bool{
	"prefix": true, "prefetch": true, "queue_type": true, "publish_window": true,
	"max_message_size": true, "reconnect_max": true, "connection_name": true,
	"quorum_initial_group_size": true,
}

// Parameters understood by amqp091-go itself; they are passed through.
var nativeParams = map[string]bool{
	"heartbeat": true, "connection_timeout": true, "channel_max": true, "auth_mechanism": true,
	"certfile": true, "keyfile": true, "cacertfile": true, "server_name_indication": true,
}

func acceptedParams() string {
	var all []string
	for k := range ownParams {
		all = append(all, k)
	}
	for k := range nativeParams {
		all = append(all, k)
	}
	sort.Strings(all)
	return strings.Join(all, ", ")
}

// parseURL splits u into the URL to dial (amqp091 parameters only) and
// the options, applying the URL's parameters over base.
func parseURL(u *url.URL, base Options) (string, Options, error) {
	o := base
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return "", o, fmt.Errorf("rabbitmq: URL scheme %q: accepted schemes are amqp and amqps: %w", u.Scheme, transport.ErrInvalid)
	}
	if u.Hostname() == "" {
		// amqp091-go would dial guest@localhost: a URL must say where.
		return "", o, fmt.Errorf("rabbitmq: URL %s has no host; want %s://user:pass@host:5672/vhost: %w", transport.RedactURL(u), u.Scheme, transport.ErrInvalid)
	}
	for _, h := range strings.Split(u.Host, ",") {
		if err := transport.CheckPort(strings.TrimSpace(h)); err != nil {
			return "", o, fmt.Errorf("rabbitmq: URL %s: %v: %w", transport.RedactURL(u), err, transport.ErrInvalid)
		}
	}
	q, err := transport.Query(u)
	if err != nil {
		return "", o, fmt.Errorf("rabbitmq: URL %s: %v: %w", transport.RedactURL(u), err, transport.ErrInvalid)
	}
	keep := url.Values{}
	bad := func(k, v, want string) error {
		return fmt.Errorf("rabbitmq: URL parameter %s=%q: %s: %w", k, v, want, transport.ErrInvalid)
	}
	for k, vs := range q {
		v := ""
		if len(vs) > 0 {
			v = vs[len(vs)-1]
		}
		switch {
		case nativeParams[k]:
			keep[k] = vs
			continue
		case !ownParams[k]:
			return "", o, fmt.Errorf("rabbitmq: unknown URL parameter %q; accepted parameters: %s: %w", k, acceptedParams(), transport.ErrInvalid)
		}
		switch k {
		case "prefix":
			o.Prefix = v
		case "prefetch":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 65535 {
				return "", o, bad(k, v, "want an integer from 0 to 65535")
			}
			o.Prefetch = n
		case "queue_type":
			if v != QueueTypeQuorum && v != QueueTypeClassic {
				return "", o, bad(k, v, "want quorum or classic")
			}
			o.QueueType = v
		case "publish_window":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1<<20 {
				return "", o, bad(k, v, "want an integer from 1 to 1048576")
			}
			o.PublishWindow = n
		case "max_message_size":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 512<<20 {
				return "", o, bad(k, v, "want a number of bytes from 1 to 536870912")
			}
			o.MaxMessageSize = n
		case "reconnect_max":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return "", o, bad(k, v, "want a positive Go duration such as 5s")
			}
			o.ReconnectMaxDelay = d
		case "connection_name":
			o.ConnectionName = v
		case "quorum_initial_group_size":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 255 {
				return "", o, bad(k, v, "want an integer from 1 to 255")
			}
			o.QuorumInitialGroupSize = n
		}
	}
	if o.QueueType == "" {
		o.QueueType = QueueTypeQuorum
	}
	if o.QueueType != QueueTypeQuorum && o.QueueType != QueueTypeClassic {
		return "", o, fmt.Errorf("rabbitmq: queue type %q: want quorum or classic: %w", o.QueueType, transport.ErrInvalid)
	}
	if o.PublishWindow <= 0 {
		o.PublishWindow = DefaultPublishWindow
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.ReconnectMaxDelay <= 0 {
		o.ReconnectMaxDelay = 5 * time.Second
	}
	if o.ConnectionName == "" {
		o.ConnectionName = "switchboard"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.QuorumInitialGroupSize < 0 {
		return "", o, fmt.Errorf("rabbitmq: quorum initial group size %d: want a positive number or 0: %w", o.QuorumInitialGroupSize, transport.ErrInvalid)
	}
	c := *u
	c.RawQuery = keep.Encode()
	c.Fragment = ""
	// Several hosts (h1:5672,h2:5672): see hosts.go.
	if err := checkHosts(c.String()); err != nil {
		return "", o, err
	}
	return c.String(), o, nil
}
