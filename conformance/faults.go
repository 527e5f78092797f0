package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/internal/faultnet"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// DialFunc opens a network connection, as net.Dialer.DialContext does.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// faults is what the Faults cases do to the connections between some
// clients and the broker.
type faults interface {
	Cut()                     // drop every connection, refuse new ones
	Restore()                 // end a Cut
	SetLatency(time.Duration) // delay every read and write
	Stall()                   // hold every read
	Unstall()                 // release the reads
	Felt() <-chan struct{}    // closed once a client met the last Cut or Stall
}

// faultyClients returns a fault injector and a function that opens clients
// subject to it. With Harness.OpenDialer the faults are real network
// faults (package faultnet); without it (inmem) the suite emulates them
// around the transport.
func (e *env) faultyClients() (faults, func(opts ...messaging.ClientOption) *messaging.Client) {
	var f faults
	var open func(ctx context.Context) (transport.Transport, error)
	if e.h.OpenDialer != nil {
		n := faultnet.New()
		f = n
		open = func(ctx context.Context) (transport.Transport, error) { return e.h.OpenDialer(ctx, n.DialContext) }
	} else {
		ef := newEmulatedFaults()
		f = ef
		open = func(ctx context.Context) (transport.Transport, error) {
			tr, err := e.h.Open(ctx)
			if err != nil {
				return nil, err
			}
			return &faultyTransport{Transport: tr, f: ef}, nil
		}
	}
	e.Cleanup(func() { f.Restore(); f.Unstall(); f.SetLatency(0) }) // before the clients close
	return f, func(opts ...messaging.ClientOption) *messaging.Client {
		e.Helper()
		tr, err := open(e.ctx)
		if err != nil {
			e.Fatalf("open a transport through the fault injector: %v", err)
		}
		c, err := messaging.New(tr, clientOpts(opts...)...)
		if err != nil {
			tr.Close()
			e.Fatalf("messaging.New: %v", err)
		}
		e.Cleanup(func() { c.Close() })
		return c
	}
}

// typedFailure reports whether err is one of the errors a client may see
// while the broker is unreachable: typed, so callers can decide to retry.
func typedFailure(err error) bool {
	return errors.Is(err, messaging.ErrUnavailable) || errors.Is(err, messaging.ErrTimeout) ||
		errors.Is(err, context.DeadlineExceeded)
}

// publishUntilAccepted publishes m, retrying failed attempts (each bounded
// by a few seconds) as an application would. Every failure must be typed.
func (e *env) publishUntilAccepted(c *messaging.Client, topic string, m *messaging.Message) (failures int) {
	e.Helper()
	for {
		ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
		err := c.Publish(ctx, topic, m)
		cancel()
		if err == nil {
			return failures
		}
		if !typedFailure(err) {
			e.Fatalf("publish failed with an untyped error: %v", err)
		}
		if e.ctx.Err() != nil {
			e.Fatalf("publish never succeeded: %v", err)
		}
		failures++
		select { // pace the retries, as an application would
		case <-time.After(20 * time.Millisecond):
		case <-e.ctx.Done():
		}
	}
}

// duplicates returns how many deliveries beyond one per body r saw.
func duplicates(r *recorder) int {
	n := 0
	for _, c := range r.bodies() {
		n += c - 1
	}
	return n
}

// faultsCutDuringPublish proves R54: a publisher whose connections are cut
// gets typed errors while the broker is unreachable, resumes by itself, and
// every publish that succeeded is consumed: nothing lost.
func faultsCutDuringPublish(e *env) {
	f, faulty := e.faultyClients()
	pub := faulty()
	topic := e.name("t")
	var r recorder
	e.subscribe(e.client(), topic, e.name("g"), r.handle)
	want := seq("m", 60)
	failures := 0
	for i, body := range want {
		if i == 20 || i == 40 {
			f.Cut()
			// This publish meets the cut; it fails (typed) until restored.
			go func() { <-f.Felt(); f.Restore() }()
		}
		failures += e.publishUntilAccepted(pub, topic, msg("k", body))
	}
	e.awaitBodies(&r, want...)
	e.Logf("faults: %d publish attempts failed during the cuts; %d duplicates delivered", failures, duplicates(&r))
}

// faultsCutDuringConsume proves R55: a consumer whose connections are cut
// twice resumes by itself and receives every message: nothing lost
// (duplicates allowed).
func faultsCutDuringConsume(e *env) {
	f, faulty := e.faultyClients()
	topic, group := e.name("t"), e.name("g")
	var r recorder
	e.subscribe(faulty(), topic, group, r.handle)
	pub := e.client()
	want := seq("m", 90)
	for part := 0; part < 3; part++ {
		e.publish(pub, topic, msgsOf("", want[part*30:(part+1)*30])...)
		e.awaitBodies(&r, want[part*30:(part+1)*30]...)
		if part < 2 {
			f.Cut()
			e.await("the consumer to meet the cut", f.Felt())
			f.Restore()
		}
	}
	e.Logf("faults: %d duplicates delivered", duplicates(&r))
}

// faultsCutDuringRequest proves R56: requests made while the requester's
// and the responder's connections are cut fail with typed errors (or
// succeed late), and request/reply resumes by itself.
func faultsCutDuringRequest(e *env) {
	f, faulty := e.faultyClients()
	svc := e.name("s")
	e.serve(faulty(), svc, func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: append([]byte("re:"), m.Body...)}, nil
	})
	req := faulty()
	failures := 0
	for i := 0; i < 12; i++ {
		if i == 4 || i == 8 {
			f.Cut()
			go func() { <-f.Felt(); f.Restore() }()
		}
		body := "q" + strconv.Itoa(i)
		for {
			ctx, cancel := context.WithTimeout(e.ctx, 3*time.Second)
			reply, err := req.Request(ctx, svc, &messaging.Message{Body: []byte(body)})
			cancel()
			if err == nil {
				if string(reply.Body) != "re:"+body {
					e.Fatalf("request %s got reply %q", body, reply.Body)
				}
				break
			}
			if !typedFailure(err) {
				e.Fatalf("request %s failed with an untyped error: %v", body, err)
			}
			if e.ctx.Err() != nil {
				e.Fatalf("request %s never succeeded: %v", body, err)
			}
			failures++
		}
	}
	e.Logf("faults: %d request attempts failed during the cuts", failures)
}

// faultsLatency proves R57: with latency on every read and write, every
// pattern still works.
func faultsLatency(e *env) {
	f, faulty := e.faultyClients()
	f.SetLatency(20 * time.Millisecond)
	c := faulty()
	topic, svc := e.name("t"), e.name("s")
	var r recorder
	e.subscribe(c, topic, e.name("g"), r.handle)
	e.serve(c, svc, func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: m.Body}, nil
	})
	want := seq("m", 10)
	e.publish(c, topic, msgsOf("k", want)...)
	e.awaitBodies(&r, want...)
	for i := 0; i < 3; i++ {
		if _, err := c.Request(e.ctx, svc, &messaging.Message{Body: []byte("x")}); err != nil {
			e.Fatalf("request under latency: %v", err)
		}
	}
}

// faultsStallReads proves R58: a consumer whose reads stall (the
// connection open, no data arriving) receives everything once they resume.
func faultsStallReads(e *env) {
	f, faulty := e.faultyClients()
	topic := e.name("t")
	var r recorder
	e.subscribe(faulty(), topic, e.name("g"), r.handle)
	pub := e.client()
	e.publish(pub, topic, msg("k", "before"))
	e.awaitBodies(&r, "before")
	f.Stall()
	want := seq("m", 20)
	e.publish(pub, topic, msgsOf("k", want)...)
	e.await("the consumer to meet the stall", f.Felt())
	f.Unstall()
	e.awaitBodies(&r, want...)
	e.Logf("faults: %d duplicates delivered", duplicates(&r))
}

func msgsOf(key string, bodies []string) []*messaging.Message {
	out := make([]*messaging.Message, len(bodies))
	for i, b := range bodies {
		out[i] = msg(key, b)
	}
	return out
}

// emulatedFaults injects the faults of package faultnet around a
// transport without network connections: a cut fails sends and closes the
// transport's subscriptions (their unacknowledged messages go back to the
// broker, as a dropped connection would) until Restore; a stall holds
// receives; latency delays every call.
type emulatedFaults struct {
	mu      sync.Mutex
	cut     bool
	restore chan struct{} // closed by Restore
	latency time.Duration
	stall   chan struct{}
	hit     chan struct{}
	subs    map[*faultySub]struct{}
}

func newEmulatedFaults() *emulatedFaults {
	return &emulatedFaults{hit: make(chan struct{}), restore: make(chan struct{}), subs: map[*faultySub]struct{}{}}
}

func (f *emulatedFaults) Cut() {
	f.mu.Lock()
	f.cut = true
	f.hit = make(chan struct{})
	f.restore = make(chan struct{})
	subs := make([]*faultySub, 0, len(f.subs))
	for s := range f.subs {
		subs = append(subs, s)
	}
	f.mu.Unlock()
	for _, s := range subs {
		s.drop()
	}
}

func (f *emulatedFaults) Restore() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		f.cut = false
		close(f.restore)
	}
}

func (f *emulatedFaults) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.latency = d
	f.mu.Unlock()
}

func (f *emulatedFaults) Stall() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stall == nil {
		f.stall = make(chan struct{})
		f.hit = make(chan struct{})
	}
}

func (f *emulatedFaults) Unstall() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stall != nil {
		close(f.stall)
		f.stall = nil
	}
}

func (f *emulatedFaults) Felt() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hit
}

func (f *emulatedFaults) feltLocked() {
	select {
	case <-f.hit:
	default:
		close(f.hit)
	}
}

// gate applies the faults to one call: it fails while cut, and waits out
// a stall when reading.
func (f *emulatedFaults) gate(ctx context.Context, reading bool) error {
	f.mu.Lock()
	lat := f.latency
	if f.cut {
		f.feltLocked()
		f.mu.Unlock()
		return fmt.Errorf("%w: emulated network cut", transport.ErrUnavailable)
	}
	stall := f.stall
	if reading && stall != nil {
		f.feltLocked()
	} else {
		stall = nil
	}
	f.mu.Unlock()
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if lat > 0 {
		select {
		case <-time.After(lat):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// faultyTransport is a transport subject to emulated faults.
type faultyTransport struct {
	transport.Transport
	f *emulatedFaults
}

func (t *faultyTransport) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	if err := t.f.gate(ctx, false); err != nil {
		return err
	}
	return t.Transport.Send(ctx, to, msgs)
}

func (t *faultyTransport) Declare(ctx context.Context, a transport.Address) error {
	if err := t.f.gate(ctx, false); err != nil {
		return err
	}
	return t.Transport.Declare(ctx, a)
}

func (t *faultyTransport) Subscribe(ctx context.Context, from transport.Address, group string, o transport.SubscribeOptions) (transport.Subscription, error) {
	if err := t.f.gate(ctx, false); err != nil {
		return nil, err
	}
	inner, err := t.Transport.Subscribe(ctx, from, group, o)
	if err != nil {
		return nil, err
	}
	s := &faultySub{t: t, from: from, group: group, o: o, inner: inner}
	t.f.mu.Lock()
	t.f.subs[s] = struct{}{}
	t.f.mu.Unlock()
	return s, nil
}

func (t *faultyTransport) OpenInbox(ctx context.Context) (transport.Inbox, error) {
	if err := t.f.gate(ctx, false); err != nil {
		return nil, err
	}
	in, err := t.Transport.OpenInbox(ctx)
	if err != nil {
		return nil, err
	}
	return &faultyInbox{Inbox: in, f: t.f}, nil
}

// faultySub is a subscription whose connection a cut drops: the inner
// subscription is closed (releasing what it holds) and opened again once
// the network is restored.
type faultySub struct {
	t     *faultyTransport
	from  transport.Address
	group string
	o     transport.SubscribeOptions

	mu     sync.Mutex
	inner  transport.Subscription // nil while dropped
	closed bool
}

func (s *faultySub) drop() {
	s.mu.Lock()
	inner := s.inner
	s.inner = nil
	s.mu.Unlock()
	if inner != nil {
		inner.Close()
	}
}

func (s *faultySub) current(ctx context.Context) (transport.Subscription, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, transport.ErrClosed
		}
		inner := s.inner
		s.mu.Unlock()
		if err := s.t.f.gate(ctx, true); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// Cut: wait for the network, as a reconnecting adapter does.
			s.t.f.mu.Lock()
			restored := s.t.f.restore
			s.t.f.mu.Unlock()
			select {
			case <-restored:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		if inner != nil {
			return inner, nil
		}
		fresh, err := s.t.Transport.Subscribe(ctx, s.from, s.group, s.o)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if s.inner == nil && !s.closed {
			s.inner = fresh
			fresh = nil
		}
		s.mu.Unlock()
		if fresh != nil {
			fresh.Close()
		}
	}
}

func (s *faultySub) Receive(ctx context.Context, max int) ([]*transport.Message, error) {
	for {
		inner, err := s.current(ctx)
		if err != nil {
			return nil, err
		}
		msgs, err := inner.Receive(ctx, max)
		if err != nil && errors.Is(err, transport.ErrClosed) && ctx.Err() == nil {
			s.mu.Lock()
			dropped := !s.closed && s.inner != inner
			s.mu.Unlock()
			if dropped { // dropped by a cut: reconnect
				continue
			}
		}
		return msgs, err
	}
}

func (s *faultySub) settle(ctx context.Context, ids []any, ack bool) error {
	if err := s.t.f.gate(ctx, false); err != nil {
		return err
	}
	s.mu.Lock()
	inner := s.inner
	s.mu.Unlock()
	if inner == nil {
		return fmt.Errorf("%w: emulated network cut", transport.ErrUnavailable)
	}
	if ack {
		return inner.Ack(ctx, ids)
	}
	return inner.Nack(ctx, ids)
}

func (s *faultySub) Ack(ctx context.Context, ids []any) error  { return s.settle(ctx, ids, true) }
func (s *faultySub) Nack(ctx context.Context, ids []any) error { return s.settle(ctx, ids, false) }

func (s *faultySub) Close() error {
	s.mu.Lock()
	s.closed = true
	inner := s.inner
	s.inner = nil
	s.mu.Unlock()
	s.t.f.mu.Lock()
	delete(s.t.f.subs, s)
	s.t.f.mu.Unlock()
	if inner != nil {
		return inner.Close()
	}
	return nil
}

// faultyInbox holds replies while the network is cut or stalled.
type faultyInbox struct {
	transport.Inbox
	f *emulatedFaults
}

func (in *faultyInbox) Receive(ctx context.Context) ([]*transport.Message, error) {
	for {
		err := in.f.gate(ctx, true)
		if err == nil {
			return in.Inbox.Receive(ctx)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		in.f.mu.Lock()
		restored := in.f.restore
		in.f.mu.Unlock()
		select {
		case <-restored:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
