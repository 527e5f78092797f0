package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/internal/wait"
	"github.com/switchboard-go/switchboard/transport"
)

// backoffMin is the first pause of the reconnect and retry loops
// (wait.Backoff doubles it up to each loop's limit).
const backoffMin = 50 * time.Millisecond

// connMgr owns the AMQP connection and redials it when it drops.
type connMgr struct {
	urls []string // one per host of the URL, in order (see hosts.go)
	cfg  amqp.Config
	log  *slog.Logger
	maxB time.Duration

	mu      sync.Mutex
	conn    *amqp.Connection
	host    int // index in urls of the host conn is connected to
	gen     uint64
	ready   chan struct{} // closed while conn is set
	lastErr error

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func dialConn(ctx context.Context, url string, cfg amqp.Config, log *slog.Logger, maxB time.Duration) (*connMgr, error) {
	urls, err := splitHosts(url)
	if err != nil {
		return nil, err
	}
	m := &connMgr{urls: urls, cfg: cfg, log: log, maxB: maxB, ready: make(chan struct{}), done: make(chan struct{})}
	conn, host, err := m.dial(ctx)
	if err != nil {
		return nil, err
	}
	m.conn, m.host, m.gen = conn, host, 1
	close(m.ready)
	m.wg.Add(1)
	go m.loop(conn)
	return m, nil
}

// dial tries each host once, in the URL's order, bounded by ctx, and
// returns the first connection and its host's index. When every host
// fails, the error is the first host's (the others are logged).
func (m *connMgr) dial(ctx context.Context) (*amqp.Connection, int, error) {
	var first error
	for i := range m.urls {
		c, err := m.dialHost(ctx, i)
		if err == nil {
			return c, i, nil
		}
		if ctx.Err() != nil {
			return nil, 0, err
		}
		if len(m.urls) > 1 {
			m.log.Debug("rabbitmq: dial failed", "host", hostOf(m.urls[i]), "err", err)
		}
		if first == nil {
			first = err
		}
		if errors.Is(err, transport.ErrTLS) || errors.Is(err, transport.ErrUnauthorized) {
			return nil, 0, err // the other hosts would refuse the same configuration
		}
	}
	return nil, 0, first
}

// dialHost dials the i-th host once, bounded by ctx.
func (m *connMgr) dialHost(ctx context.Context, i int) (*amqp.Connection, error) {
	type res struct {
		c   *amqp.Connection
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := m.dialOnce(i)
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, dialErr(m.urls[i], r.err)
		}
		return r.c, nil
	case <-ctx.Done():
		go func() { // do not leak the connection the dial may still produce
			if r := <-ch; r.c != nil {
				_ = r.c.Close()
			}
		}()
		return nil, fmt.Errorf("rabbitmq: dial: %w: %w", transport.ErrUnavailable, ctx.Err())
	}
}

// dialOnce dials the i-th host with a copy of the TLS configuration:
// amqp091-go writes the host name into it (ServerName) when it is empty,
// and each host must be verified under its own name.
func (m *connMgr) dialOnce(i int) (*amqp.Connection, error) {
	cfg := m.cfg
	if cfg.TLSClientConfig != nil {
		cfg.TLSClientConfig = cfg.TLSClientConfig.Clone()
	}
	return amqp.DialConfig(m.urls[i], cfg)
}

func (m *connMgr) loop(conn *amqp.Connection) {
	defer m.wg.Done()
	for {
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case err := <-closed:
			m.log.Warn("rabbitmq: connection lost", "err", err)
		case <-m.done:
			_ = conn.Close()
			return
		}
		m.mu.Lock()
		m.conn = nil
		m.ready = make(chan struct{})
		m.mu.Unlock()
		_ = conn.Close()
		// Try the hosts in turn, starting with the one after the host
		// that was lost, and back off after each round.
		m.mu.Lock()
		lost := m.host
		m.mu.Unlock()
		host := -1
	redial:
		for n := 0; ; n++ {
			if !wait.Sleep(context.Background(), m.done, wait.Backoff(n, backoffMin, m.maxB)) {
				return
			}
			for j := 1; j <= len(m.urls); j++ {
				i := (lost + j) % len(m.urls)
				c, err := m.dialOnce(i)
				if err != nil {
					m.mu.Lock()
					m.lastErr = err
					m.mu.Unlock()
					m.log.Debug("rabbitmq: redial failed", "host", hostOf(m.urls[i]), "round", n+1, "err", err)
					select {
					case <-m.done:
						return
					default:
					}
					continue
				}
				conn, host = c, i
				break redial
			}
		}
		select {
		case <-m.done:
			_ = conn.Close()
			return
		default:
		}
		m.log.Info("rabbitmq: reconnected", "host", hostOf(m.urls[host]))
		m.mu.Lock()
		m.conn, m.host = conn, host
		m.gen++
		m.lastErr = nil
		close(m.ready)
		m.mu.Unlock()
	}
}

// current returns the connection and its generation without waiting
// (nil while reconnecting).
func (m *connMgr) current() (*amqp.Connection, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conn, m.gen
}

// get waits for an open connection.
func (m *connMgr) get(ctx context.Context, done <-chan struct{}) (*amqp.Connection, uint64, error) {
	for {
		m.mu.Lock()
		c, gen, ready, last := m.conn, m.gen, m.ready, m.lastErr
		m.mu.Unlock()
		if c != nil && !c.IsClosed() {
			return c, gen, nil
		}
		if c != nil { // dropped; the loop has not noticed yet
			if !wait.Sleep(ctx, done, 10*time.Millisecond) {
				return nil, 0, m.waitErr(ctx, done, last)
			}
			continue
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, 0, m.waitErr(ctx, done, last)
		case <-done:
			return nil, 0, transport.ErrClosed
		case <-m.done:
			return nil, 0, transport.ErrClosed
		}
	}
}

func (m *connMgr) waitErr(ctx context.Context, done <-chan struct{}, last error) error {
	select {
	case <-done:
		return transport.ErrClosed
	case <-m.done:
		return transport.ErrClosed
	default:
	}
	if last != nil {
		return fmt.Errorf("rabbitmq: reconnecting (last error: %v): %w: %w", last, transport.ErrUnavailable, ctx.Err())
	}
	return fmt.Errorf("rabbitmq: reconnecting: %w: %w", transport.ErrUnavailable, ctx.Err())
}

func (m *connMgr) close() {
	m.closeOnce.Do(func() { close(m.done) })
	m.wg.Wait()
}

// keeper maintains one AMQP channel: it opens it, runs setup, and when the
// channel or its connection closes, opens and sets up a new one, until
// stopped. S is the per-channel state setup builds.
type keeper[S any] struct {
	m     *connMgr
	name  string
	setup func(ctx context.Context, ch *amqp.Channel) (S, error)
	lost  func(S, *amqp.Error) // called once a channel's state is lost; may be nil

	mu    sync.Mutex
	ch    *amqp.Channel
	state S
	ok    bool
	ready chan struct{}

	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func newKeeper[S any](m *connMgr, name string, setup func(context.Context, *amqp.Channel) (S, error), lost func(S, *amqp.Error)) *keeper[S] {
	return &keeper[S]{m: m, name: name, setup: setup, lost: lost, ready: make(chan struct{}), done: make(chan struct{})}
}

// start opens the first channel (bounded by ctx) and starts the loop that
// reopens it.
func (k *keeper[S]) start(ctx context.Context) error {
	ch, st, err := k.open(ctx)
	if err != nil {
		return err
	}
	k.install(ch, st)
	k.wg.Add(1)
	go k.loop(ch, st)
	return nil
}

func (k *keeper[S]) open(ctx context.Context) (*amqp.Channel, S, error) {
	var zero S
	for {
		conn, _, err := k.m.get(ctx, k.done)
		if err != nil {
			return nil, zero, err
		}
		ch, err := conn.Channel()
		if err != nil {
			if conn.IsClosed() || errors.Is(err, amqp.ErrClosed) {
				continue // wait for the next connection
			}
			return nil, zero, brokerErr("open channel", err)
		}
		type result struct {
			st  S
			err error
		}
		rc := make(chan result, 1)
		go func() {
			st, err := k.setup(ctx, ch)
			rc <- result{st, err}
		}()
		var r result
		select {
		case r = <-rc:
		case <-ctx.Done():
			// Let the setup finish first: amqp091-go does not serialise
			// a channel's RPCs, so a Close racing the setup's calls can
			// have its close-ok taken by one of them and then wait
			// forever. Only a setup that hangs is cut short by Close.
			t := time.NewTimer(5 * time.Second)
			select {
			case <-rc:
				t.Stop()
			case <-t.C:
				_ = ch.Close() // unblocks the setup's RPCs
				<-rc
				return nil, zero, fmt.Errorf("rabbitmq: set up %s: %w: %w", k.name, transport.ErrUnavailable, ctx.Err())
			}
			_ = ch.Close()
			return nil, zero, fmt.Errorf("rabbitmq: set up %s: %w: %w", k.name, transport.ErrUnavailable, ctx.Err())
		}
		st, err := r.st, r.err
		if err != nil {
			_ = ch.Close()
			if conn.IsClosed() && ctx.Err() == nil {
				continue
			}
			return nil, zero, err
		}
		return ch, st, nil
	}
}

func (k *keeper[S]) install(ch *amqp.Channel, st S) {
	k.mu.Lock()
	k.ch, k.state, k.ok = ch, st, true
	close(k.ready)
	k.mu.Unlock()
}

func (k *keeper[S]) loop(ch *amqp.Channel, st S) {
	defer k.wg.Done()
	for {
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		var cerr *amqp.Error
		select {
		case cerr = <-closed:
		case <-k.done:
			_ = ch.Close()
			k.markLost(st, nil)
			return
		}
		k.m.log.Debug("rabbitmq: channel closed", "channel", k.name, "err", cerr)
		k.markLost(st, cerr)
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-k.done:
			case <-ctx.Done():
			}
			cancel()
		}()
		var err error
		for n := 0; ; n++ {
			ch, st, err = k.open(ctx)
			if err == nil {
				break
			}
			if errors.Is(err, transport.ErrClosed) || ctx.Err() != nil {
				cancel()
				return
			}
			k.m.log.Warn("rabbitmq: reopening channel failed", "channel", k.name, "err", err)
			if !wait.Sleep(ctx, k.done, wait.Backoff(n, backoffMin, k.m.maxB)) {
				cancel()
				return
			}
		}
		cancel()
		k.install(ch, st)
	}
}

func (k *keeper[S]) markLost(st S, cerr *amqp.Error) {
	k.mu.Lock()
	if k.ok {
		k.ok = false
		k.ch = nil
		k.ready = make(chan struct{})
	}
	k.mu.Unlock()
	if k.lost != nil {
		k.lost(st, cerr)
	}
}

// current waits for a working channel and returns its state.
func (k *keeper[S]) current(ctx context.Context) (S, error) {
	for {
		k.mu.Lock()
		st, ok, ready := k.state, k.ok, k.ready
		k.mu.Unlock()
		if ok {
			return st, nil
		}
		select {
		case <-ready:
		case <-k.done:
			var zero S
			return zero, transport.ErrClosed
		case <-ctx.Done():
			var zero S
			k.m.mu.Lock()
			last := k.m.lastErr
			k.m.mu.Unlock()
			return zero, k.m.waitErr(ctx, k.done, last)
		}
	}
}

// peek returns the current state without waiting.
func (k *keeper[S]) peek() (S, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.state, k.ok
}

func (k *keeper[S]) stop() {
	k.stopOnce.Do(func() { close(k.done) })
	k.wg.Wait()
}

// brokerErr wraps an amqp091 error, marking it with the transport
// sentinel that matches its AMQP reply code.
func brokerErr(op string, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.NotFound:
			return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrNotFound, err)
		case amqp.PreconditionFailed, amqp.NotAllowed, amqp.InvalidPath, amqp.SyntaxError, amqp.CommandInvalid:
			return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrInvalid, err)
		case amqp.AccessRefused:
			// Wrong credentials or missing permissions: a runtime error,
			// not a bad argument (errors.As reaches the *amqp.Error).
			return fmt.Errorf("rabbitmq: %s: %w", op, err)
		case amqp.ChannelError, amqp.ConnectionForced, amqp.ResourceError, amqp.InternalError, amqp.FrameError:
			return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrUnavailable, err)
		}
		return fmt.Errorf("rabbitmq: %s: %w", op, err)
	}
	if errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrUnavailable, err)
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) || isNetErr(err) {
		return fmt.Errorf("rabbitmq: %s: %w: %w", op, transport.ErrUnavailable, err)
	}
	return fmt.Errorf("rabbitmq: %s: %w", op, err)
}

func isNetErr(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
