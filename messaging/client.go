package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	_ "github.com/switchboard-go/switchboard/inmem" // registers mem://, the default transport
	"github.com/switchboard-go/switchboard/transport"
)

// EnvURL is the environment variable OpenFromEnv reads the transport URL
// from.
const EnvURL = "SWITCHBOARD_URL"

// DefaultURL is the URL OpenFromEnv uses when EnvURL is unset: a private
// in-memory broker.
const DefaultURL = "mem://"

// Client sends and receives messages through one transport, with every
// pattern: Publish/Subscribe, Notify/Listen, Request/RequestAsync/Serve
// and Gather/Respond. A Client is safe for concurrent use. Close it to
// drain its subscriptions and release the transport.
type Client struct {
	t      transport.Transport
	sendFn SendFunc // t.Send wrapped in the send middleware
	caps   transport.Capabilities
	o      clientOptions
	tel    telemetry
	log    *slog.Logger

	mu        sync.Mutex
	closed    bool
	subs      map[*Subscription]struct{}
	ops       sync.WaitGroup // sends in progress
	declared  sync.Map       // queue name -> struct{}: declared by Notify
	rpcQueues sync.Map       // service -> its request queue name
	served    sync.Map       // service -> time.Time it was last found served (responders.go)
	replies   *replyInbox    // the reply inbox, opened on first request
	opening   *inboxOpening  // the opening of replies under way, or nil
	closeErr  error
	closing   chan struct{}
}

// Open opens a transport by URL (for example "mem://", "kafka://host:9092",
// "amqp://user:pass@host:5672/", "sqs://?region=eu-west-1") and returns a
// Client over it. The scheme's adapter must be registered: import its
// package (mem:// is always registered).
func Open(ctx context.Context, rawURL string, opts ...ClientOption) (*Client, error) {
	t, err := transport.Open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	c, err := New(t, opts...)
	if err != nil {
		t.Close()
		return nil, err
	}
	return c, nil
}

// OpenFromEnv opens the URL in the SWITCHBOARD_URL environment variable,
// or DefaultURL when it is unset, so that a service's broker is chosen at
// deploy time.
func OpenFromEnv(ctx context.Context, opts ...ClientOption) (*Client, error) {
	u := os.Getenv(EnvURL)
	if u == "" {
		u = DefaultURL
	}
	return Open(ctx, u, opts...)
}

// New returns a Client over an open transport. The Client owns t and
// closes it on Close.
func New(t transport.Transport, opts ...ClientOption) (*Client, error) {
	if t == nil {
		return nil, invalid("nil transport")
	}
	o := clientOptions{
		logger:         slog.New(slog.DiscardHandler),
		drainTimeout:   30 * time.Second,
		requestTimeout: 30 * time.Second,
	}
	for i, opt := range opts {
		if opt == nil {
			return nil, invalid("client option %d of %d is nil", i+1, len(opts))
		}
		opt(&o)
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := o.resolveSource(); err != nil {
		return nil, err
	}
	// Validate the subscription defaults now, so a bad default fails
	// here rather than on every Subscribe.
	if _, err := (&Client{o: o}).subOptions(nil); err != nil {
		return nil, err
	}
	caps := t.Capabilities()
	tel, err := newTelemetry(&o, caps)
	if err != nil {
		return nil, fmt.Errorf("switchboard: telemetry: %w", err)
	}
	return &Client{
		tel:     tel,
		t:       t,
		sendFn:  chainSend(t.Send, o.sendMiddleware),
		caps:    caps,
		o:       o,
		log:     o.logger.With("transport", caps.Name),
		subs:    make(map[*Subscription]struct{}),
		closing: make(chan struct{}),
	}, nil
}

// Capabilities reports the transport's limits and what its broker does
// natively.
func (c *Client) Capabilities() transport.Capabilities { return c.caps }

// As converts the client's transport to the broker's native client type
// (see each adapter's documentation), as an escape hatch.
func (c *Client) As(target any) bool { return c.t.As(target) }

// enter registers a send in progress; it fails once the client is closed.
func (c *Client) enter() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.ops.Add(1)
	return nil
}

// Publish sends msgs, in order, to every consumer group of topic. It
// returns once the broker has accepted all of them. A group receives the
// messages published after it was first declared (by Subscribe or Respond).
func (c *Client) Publish(ctx context.Context, topic string, msgs ...*Message) error {
	if err := validName("topic", topic); err != nil {
		return err
	}
	return c.send(ctx, transport.Topic(topic), msgs)
}

// Notify sends msgs, in order, to one recipient, which receives them with
// Listen. The recipient's queue is created if missing, so messages sent
// before the recipient ever listened are held until it does.
func (c *Client) Notify(ctx context.Context, recipient string, msgs ...*Message) error {
	if err := validName("recipient", recipient); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.declareRecipient(ctx, recipient); err != nil {
		return err
	}
	err := c.send(ctx, transport.Queue(recipient), msgs)
	if errors.Is(err, transport.ErrNotFound) {
		// The queue was deleted since this client declared it
		// (Admin.DeleteQueue, perhaps by another client): declare it
		// again and send once more.
		c.declared.Delete(recipient)
		if err = c.declareRecipient(ctx, recipient); err == nil {
			err = c.send(ctx, transport.Queue(recipient), msgs)
		}
	}
	return err
}

// declareRecipient declares the queue of recipient once per client.
func (c *Client) declareRecipient(ctx context.Context, recipient string) error {
	if _, ok := c.declared.Load(recipient); ok {
		return nil
	}
	if err := c.enter(); err != nil {
		return err
	}
	err := c.t.Declare(ctx, transport.Queue(recipient))
	c.ops.Done()
	if err != nil {
		return wrapOp(err, "declare queue of recipient", recipient, recipient)
	}
	c.declared.Store(recipient, struct{}{})
	return nil
}

func (c *Client) send(ctx context.Context, to transport.Address, msgs []*Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := c.enter(); err != nil {
		return err
	}
	defer c.ops.Done()
	b := getBatch(len(msgs))
	defer putBatch(b)
	now := time.Now()
	delayed := false
	for i, m := range msgs {
		if err := c.prepareInto(&b.store[i], m, now); err != nil {
			return err
		}
		delayed = delayed || !b.store[i].DeliverAt.IsZero()
	}
	var err error
	if delayed {
		err = c.sendDelayed(ctx, to, b.ptrs, now)
	} else {
		err = c.transmit(ctx, sendOp(to), to, b.ptrs)
	}
	if err != nil {
		return wrapOp(err, "send to", to.String(), to.Name)
	}
	return nil
}

// transmit sends through the send middleware and the transport, traced and
// counted. Every message the client sends goes through it.
func (c *Client) transmit(ctx context.Context, op string, to transport.Address, msgs []*transport.Message) error {
	return c.transmitFit(ctx, op, to, msgs, nil)
}

// transmitFit is transmit with a size check after the trace context was
// added to the headers: each message goes through fit when it is not nil
// (fit may shrink it to the transport's limits, or fail), else, when
// tracing added headers, through checkSize, so that nothing the client
// adds after the caller's own size check reaches the transport over its
// limits.
func (c *Client) transmitFit(ctx context.Context, op string, to transport.Address, msgs []*transport.Message, fit func(*transport.Message) error) error {
	ctx, span := c.tel.startSend(ctx, op, to, msgs)
	var err error
	if fit != nil || c.tel.prop != nil {
		for _, m := range msgs {
			if fit != nil {
				err = fit(m)
			} else {
				err = c.checkSize(m)
			}
			if err != nil {
				break
			}
		}
	}
	if err == nil {
		err = c.sendFn(ctx, to, msgs)
	}
	endSpan(span, err)
	if err == nil {
		c.tel.sent(to, len(msgs))
	}
	return err
}

func sendOp(to transport.Address) string {
	if to.Kind == transport.KindTopic {
		return "publish"
	}
	return "send"
}

// Close shuts the client down gracefully, waiting at most the drain
// timeout (WithDrainTimeout): see Shutdown.
func (c *Client) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.o.drainTimeout)
	defer cancel()
	return c.Shutdown(ctx)
}

// Shutdown shuts the client down gracefully: new calls fail with
// ErrClosed; every subscription stops fetching, lets its in-flight
// handlers finish until ctx ends, flushes its acknowledgements, stops the
// broker's deliveries and releases what it has not handled back to the
// broker (see Subscription.Shutdown); sends in progress finish;
// requests still waiting fail with ErrClosed; then the transport is
// closed. Nothing acknowledged is lost and nothing unacknowledged is
// acknowledged. Calling it again returns the first call's result.
func (c *Client) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.closing
		return c.closeErr
	}
	c.closed = true
	subs := make([]*Subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	if c.opening != nil {
		c.opening.cancel() // an inbox being opened is not waited for
	}
	c.mu.Unlock()

	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	c.ops.Wait() // sends, and an inbox opening, in progress
	c.mu.Lock()
	ib := c.replies
	c.mu.Unlock()
	if ib != nil {
		ib.close()
	}
	if err := c.t.Close(); err != nil && !errors.Is(err, ErrClosed) {
		errs = append(errs, wrapOp(err, "close transport", "", ""))
	}
	c.closeErr = errors.Join(errs...)
	close(c.closing)
	return c.closeErr
}

func (c *Client) addSub(s *Subscription) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.subs[s] = struct{}{}
	return nil
}

func (c *Client) removeSub(s *Subscription) {
	c.mu.Lock()
	delete(c.subs, s)
	c.mu.Unlock()
}

func (c *Client) subOptions(opts []SubscribeOption) (subOptions, error) {
	o := subOptions{retry: DefaultRetryPolicy, maxInFlight: 64, keyOrdering: true}
	for i, opt := range c.o.subDefaults {
		if opt == nil {
			return o, invalid("WithSubscribeDefaults: option %d of %d is nil", i+1, len(c.o.subDefaults))
		}
		opt(&o)
	}
	for i, opt := range opts {
		if opt == nil {
			return o, invalid("subscribe option %d of %d is nil", i+1, len(opts))
		}
		opt(&o)
	}
	return o, o.validate()
}

// batch holds the transport messages of one send. Adapters do not keep
// messages after Send returns (the transport contract), so batches are
// reused.
type batch struct {
	store []transport.Message
	ptrs  []*transport.Message
}

// maxPooledBatch is the largest batch kept for reuse: the adapters' typical
// Publish batch (a Publish of 100 messages allocated two slices a call).
const maxPooledBatch = 1024

var batchPool = sync.Pool{New: func() any { return new(batch) }}

func getBatch(n int) *batch {
	b := batchPool.Get().(*batch)
	if cap(b.store) < n {
		b.store = make([]transport.Message, n)
		b.ptrs = make([]*transport.Message, n)
	}
	b.store, b.ptrs = b.store[:n], b.ptrs[:n]
	for i := range b.store {
		b.ptrs[i] = &b.store[i]
	}
	return b
}

func putBatch(b *batch) {
	if cap(b.store) > maxPooledBatch {
		return
	}
	clear(b.store)
	clear(b.ptrs)
	batchPool.Put(b)
}
