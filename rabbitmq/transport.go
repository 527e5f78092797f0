package rabbitmq

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/internal/wait"
	"github.com/switchboard-go/switchboard/rabbitmq/internal/declared"
	"github.com/switchboard-go/switchboard/transport"
)

func init() {
	open := func(ctx context.Context, u *url.URL) (transport.Transport, error) {
		return OpenURL(ctx, u, nil)
	}
	transport.Register("amqp", open)
	transport.Register("amqps", open)
}

// Transport is a transport.Transport over one AMQP 0-9-1 connection to
// RabbitMQ. It is safe for concurrent use.
type Transport struct {
	opts     Options
	brokerID string // host/vhost, for the declaration registry
	m        *connMgr
	pub      *publisher
	topo     *keeper[*amqp.Channel]
	topoMu   sync.Mutex

	mu        sync.Mutex
	exchanges map[string]uint64 // declared exchange → connection generation
	subs      map[*subscription]struct{}
	inboxes   map[*inbox]struct{}
	aliases   map[string]*inbox // every wire address an open inbox has had

	closed    chan struct{}
	closeOnce sync.Once
}

var _ transport.Transport = (*Transport)(nil)

// Open opens a Transport from an amqp:// or amqps:// URL; opts may be nil.
// The URL's query parameters (see the package documentation) override
// opts.
func Open(ctx context.Context, rawURL string, opts *Options) (*Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: cannot parse URL %q: %w", transport.Redact(rawURL), transport.ErrInvalid)
	}
	return OpenURL(ctx, u, opts)
}

// OpenURL is Open for a parsed URL.
func OpenURL(ctx context.Context, u *url.URL, opts *Options) (*Transport, error) {
	var base Options
	if opts != nil {
		base = *opts
	}
	dialURL, o, err := parseURL(u, base)
	if err != nil {
		return nil, err
	}
	if _, err := amqp.ParseURI(dialURL); err != nil {
		return nil, fmt.Errorf("rabbitmq: URL %s: %s: %w", transport.RedactURL(u), redactErr(err, u), transport.ErrInvalid)
	}
	cfg := amqp.Config{
		Properties:      amqp.Table{"connection_name": o.ConnectionName, "product": "switchboard"},
		TLSClientConfig: o.TLSConfig,
		Dial:            o.Dial,
		Locale:          "en_US",
	}
	if cfg.TLSClientConfig != nil {
		cfg.TLSClientConfig = cfg.TLSClientConfig.Clone()
	}
	t := &Transport{
		opts:      o,
		brokerID:  u.Host + "/" + strings.TrimPrefix(u.Path, "/"),
		exchanges: make(map[string]uint64),
		subs:      make(map[*subscription]struct{}),
		inboxes:   make(map[*inbox]struct{}),
		aliases:   make(map[string]*inbox),
		closed:    make(chan struct{}),
	}
	t.m, err = dialConn(ctx, dialURL, cfg, o.Logger, o.ReconnectMaxDelay)
	if err != nil {
		// amqp091-go errors carry host:port, never credentials. err already
		// names this layer ("rabbitmq: dial: …").
		return nil, fmt.Errorf("open %s: %w", transport.RedactURL(u), err)
	}
	t.topo = newKeeper(t.m, "topology", func(_ context.Context, ch *amqp.Channel) (*amqp.Channel, error) { return ch, nil }, nil)
	if err := t.topo.start(ctx); err != nil {
		t.m.close()
		return nil, err
	}
	t.pub = newPublisher(t, "publisher", nil)
	if err := t.pub.k.start(ctx); err != nil {
		t.topo.stop()
		t.m.close()
		return nil, err
	}
	return t, nil
}

// redactErr renders err without the URL's password.
func redactErr(err error, u *url.URL) string {
	s := err.Error()
	if u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			s = strings.ReplaceAll(s, pw, "xxxxx")
		}
	}
	return s
}

func (t *Transport) isClosed() bool {
	select {
	case <-t.closed:
		return true
	default:
		return false
	}
}

func errClosed(what string) error {
	return fmt.Errorf("rabbitmq: %s: %w", what, transport.ErrClosed)
}

// fit makes name a valid AMQP name (at most 255 bytes), deterministically:
// a longer name keeps its first 200 bytes and gets a hash of the whole.
//
// A name beginning with "amq." (reserved by the broker) gets a leading
// "~", which Switchboard names never contain.
func fit(name string) string {
	if strings.HasPrefix(name, "amq.") {
		name = "~" + name
	}
	if len(name) <= maxShortStr {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:200] + "-" + hex.EncodeToString(sum[:12])
}

// ExchangeName returns the exchange name of a topic.
func (t *Transport) ExchangeName(topic string) string { return fit(t.opts.Prefix + topic) }

// QueueName returns the queue name of a point-to-point queue.
func (t *Transport) QueueName(queue string) string { return fit(t.opts.Prefix + queue) }

// GroupQueueName returns the queue name of a topic's consumer group:
// topic + "~" + group ("~" never occurs in Switchboard names, so group
// queues cannot collide with point-to-point queues).
func (t *Transport) GroupQueueName(topic, group string) string {
	return fit(t.opts.Prefix + topic + "~" + group)
}

func (t *Transport) queueArgs() amqp.Table {
	a := amqp.Table{"x-queue-type": t.opts.QueueType}
	if t.quorum() && t.opts.QuorumInitialGroupSize > 0 {
		a["x-quorum-initial-group-size"] = t.opts.QuorumInitialGroupSize
	}
	return a
}

func (t *Transport) quorum() bool { return t.opts.QueueType == QueueTypeQuorum }

func validName(a transport.Address) error {
	if a.Name == "" {
		return fmt.Errorf("rabbitmq: empty %s name: %w", a.Kind, transport.ErrInvalid)
	}
	return nil
}

// rpc runs a synchronous AMQP call on the topology channel, bounded by ctx.
func (t *Transport) rpc(ctx context.Context, op string, fn func(ch *amqp.Channel) error) error {
	for attempt := 0; ; attempt++ {
		ch, err := t.topo.current(ctx)
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() {
			t.topoMu.Lock()
			defer t.topoMu.Unlock()
			done <- fn(ch)
		}()
		select {
		case err = <-done:
		case <-ctx.Done():
			return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrUnavailable, ctx.Err())
		case <-t.closed:
			return errClosed(op)
		}
		if err == nil {
			return nil
		}
		var ae *amqp.Error
		transient := errors.Is(err, amqp.ErrClosed) || isNetErr(err)
		if errors.As(err, &ae) {
			switch ae.Code {
			case amqp.ConnectionForced, amqp.ChannelError, amqp.InternalError, amqp.FrameError, amqp.ResourceError:
				transient = true
			}
		}
		if transient && attempt < 5 {
			// The channel or connection dropped under us: retry on the next one.
			if !wait.Sleep(ctx, t.closed, wait.Backoff(attempt, backoffMin, t.opts.ReconnectMaxDelay)) {
				return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrUnavailable, err)
			}
			continue
		}
		return brokerErr(op, err)
	}
}

// ensureExchange declares the exchange of a topic once per connection.
func (t *Transport) ensureExchange(ctx context.Context, topic string) error {
	name := t.ExchangeName(topic)
	_, gen := t.m.current()
	t.mu.Lock()
	g, ok := t.exchanges[name]
	t.mu.Unlock()
	if ok && g == gen && gen != 0 {
		return nil
	}
	err := t.rpc(ctx, "declare exchange "+name, func(ch *amqp.Channel) error {
		return t.declareTopicExchange(ch, name)
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.exchanges[name] = gen
	t.mu.Unlock()
	return nil
}

// forgetExchanges drops the declared-exchange cache (after a 404).
func (t *Transport) forgetExchanges() {
	t.mu.Lock()
	clear(t.exchanges)
	t.mu.Unlock()
}

func (t *Transport) declareQueue(ctx context.Context, name string) error {
	err := t.rpc(ctx, "declare queue "+name, func(ch *amqp.Channel) error {
		_, err := ch.QueueDeclare(name, true, false, false, false, t.queueArgs())
		return err
	})
	if err != nil {
		return mismatch(err, name)
	}
	record(t.brokerID, name, 'q')
	return nil
}

// mismatch explains a 406 on declare.
func mismatch(err error, name string) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		return fmt.Errorf("rabbitmq: queue %q exists with other arguments (queue_type?): %w: %w", name, transport.ErrInvalid, ae)
	}
	return err
}

// Send implements transport.Transport.
func (t *Transport) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	if t.isClosed() {
		return errClosed("send")
	}
	if err := validName(to); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	var exchange, key string
	mandatory, persistent := false, true
	switch to.Kind {
	case transport.KindTopic:
		exchange = t.ExchangeName(to.Name)
	case transport.KindQueue:
		key, mandatory = t.QueueName(to.Name), true
	case transport.KindReply:
		key, persistent = t.replyKey(to.Name), false
		if len(key) > maxShortStr {
			return fmt.Errorf("rabbitmq: reply address longer than %d bytes: %w", maxShortStr, transport.ErrInvalid)
		}
		if replyAddrPoison(key) {
			t.opts.Logger.Debug("rabbitmq: dropping reply to an undecodable direct reply-to address")
			return nil // it can name no inbox; publishing it would crash the connection
		}
	default:
		return fmt.Errorf("rabbitmq: unknown address kind %s: %w", to.Kind, transport.ErrInvalid)
	}
	type run struct {
		p    *publisher
		msgs []*outMsg
	}
	var runs []run
	for _, m := range msgs {
		if m.Size() > t.opts.MaxMessageSize {
			return fmt.Errorf("rabbitmq: message of %d bytes exceeds the limit of %d: %w", m.Size(), t.opts.MaxMessageSize, transport.ErrMessageTooLarge)
		}
		pub, err := encode(m, persistent)
		if err != nil {
			return err
		}
		if to.Kind == transport.KindQueue {
			setExpiration(&pub, m.Expires)
		}
		p := t.pub
		if m.ReplyTo != "" {
			if ib := t.inboxFor(m.ReplyTo); ib != nil {
				// Direct reply-to: published on the inbox's own channel, where
				// the broker rewrites the pseudo-queue to the inbox's address.
				p = ib.pub
				pub.ReplyTo = DirectReplyTo
			} else if m.ReplyTo == DirectReplyTo {
				return fmt.Errorf("rabbitmq: ReplyTo %q is only valid as an Inbox.Address of this transport: %w", DirectReplyTo, transport.ErrInvalid)
			}
		}
		om := &outMsg{exchange: exchange, key: key, mandatory: mandatory, pub: pub, dest: to}
		if to.Kind == transport.KindTopic {
			om.key = topicRoutingKey(m.Key, m.ID) // "<partition>.<key>": see partitions.go
		}
		if n := len(runs); n > 0 && runs[n-1].p == p {
			runs[n-1].msgs = append(runs[n-1].msgs, om)
		} else {
			runs = append(runs, run{p: p, msgs: []*outMsg{om}})
		}
	}
	var ensure func(context.Context) error
	if to.Kind == transport.KindTopic {
		ensure = func(ctx context.Context) error { return t.ensureExchange(ctx, to.Name) }
	}
	for _, r := range runs {
		if err := r.p.sendAll(ctx, r.msgs, ensure); err != nil {
			if t.isClosed() && !errors.Is(err, transport.ErrClosed) {
				return fmt.Errorf("rabbitmq: send: %w: %w", transport.ErrClosed, err)
			}
			return err
		}
	}
	return nil
}

// Declare implements transport.Transport. It creates the queue of a
// KindQueue address (and the exchange of a KindTopic address).
func (t *Transport) Declare(ctx context.Context, a transport.Address) error {
	if t.isClosed() {
		return errClosed("declare")
	}
	if err := validName(a); err != nil {
		return err
	}
	switch a.Kind {
	case transport.KindQueue:
		return t.declareQueue(ctx, t.QueueName(a.Name))
	case transport.KindTopic:
		return t.ensureExchange(ctx, a.Name)
	}
	return fmt.Errorf("rabbitmq: cannot declare a %s address: %w", a.Kind, transport.ErrInvalid)
}

// Capabilities implements transport.Transport.
func (t *Transport) Capabilities() transport.Capabilities {
	return transport.Capabilities{
		Name:             "rabbitmq",
		MaxMessageSize:   t.opts.MaxMessageSize,
		OrderedByKey:     true, // group partitions with single active consumer (partitions.go)
		DeliveryCount:    t.quorum(),
		NativeDeadLetter: true,
		NativeReplyTo:    true,
	}
}

// As implements transport.Transport: target may be **amqp.Connection
// (the current connection; nil while reconnecting), *Options, or
// **Transport (this transport).
func (t *Transport) As(target any) bool {
	switch p := target.(type) {
	case **amqp.Connection:
		*p, _ = t.m.current()
		return true
	case *Options:
		*p = t.opts
		return true
	case **Transport:
		*p = t
		return true
	}
	return false
}

// Close implements transport.Transport.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() {
		close(t.closed)
		t.mu.Lock()
		subs := make([]*subscription, 0, len(t.subs))
		for s := range t.subs {
			subs = append(subs, s)
		}
		ibs := make([]*inbox, 0, len(t.inboxes))
		for ib := range t.inboxes {
			ibs = append(ibs, ib)
		}
		t.mu.Unlock()
		for _, s := range subs {
			_ = s.Close()
		}
		for _, ib := range ibs {
			_ = ib.Close()
		}
		t.pub.stop()
		t.topo.stop()
		t.m.close()
	})
	return nil
}

// record notes a declaration for package rabbitmqtest, which deletes what
// tests declared; it does nothing unless a test imported rabbitmqtest.
func record(broker, name string, kind byte) { declared.Record(broker, name, kind) }
