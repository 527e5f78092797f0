// Package faultnet injects network faults into the connections a transport
// dials, for the conformance suite's Faults cases: cut every connection and
// refuse new ones, add latency, stall reads. A transport under test dials
// through Network.DialContext instead of the system dialer, so the same
// faults apply to every adapter, whatever its protocol, and also to
// connections a broker's metadata points the client to (Kafka), which a
// TCP proxy in front of one address would miss.
package faultnet

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// ErrCut is returned by dials while the network is cut. It matches
// syscall.ECONNREFUSED, as a real refused connection would.
var ErrCut = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// Network dials connections and injects faults into them. Its zero value
// is not usable; call New. It is safe for concurrent use.
type Network struct {
	dialer net.Dialer

	mu      sync.Mutex
	conns   map[*conn]struct{}
	cut     bool
	latency time.Duration
	stall   chan struct{} // non-nil while reads are stalled; closed to release them
	// hit is closed the first time a fault is felt after it was set: a
	// dial refused while cut, or a read held while stalled.
	hit chan struct{}
}

// New returns a healthy network.
func New() *Network {
	return &Network{conns: make(map[*conn]struct{}), hit: make(chan struct{})}
}

// DialContext dials like net.Dialer.DialContext, through the faults.
func (n *Network) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	if n.cut {
		n.feltLocked()
		n.mu.Unlock()
		return nil, ErrCut
	}
	n.mu.Unlock()
	c, err := n.dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	fc := &conn{Conn: c, n: n, closed: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cut { // cut while dialling
		c.Close()
		n.feltLocked()
		return nil, ErrCut
	}
	n.conns[fc] = struct{}{}
	return fc, nil
}

// Dial is DialContext without a context, for clients that want that form.
func (n *Network) Dial(network, addr string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, addr)
}

// Cut closes every open connection and refuses new dials until Restore.
// Felt is closed at the first refused dial.
func (n *Network) Cut() {
	n.mu.Lock()
	n.cut = true
	n.hit = make(chan struct{})
	conns := n.conns
	n.conns = make(map[*conn]struct{})
	n.mu.Unlock()
	for c := range conns {
		c.shut()
	}
}

// Restore ends a Cut: dials succeed again.
func (n *Network) Restore() {
	n.mu.Lock()
	n.cut = false
	n.mu.Unlock()
}

// SetLatency delays every read and write of every connection by d (0
// removes the delay).
func (n *Network) SetLatency(d time.Duration) {
	n.mu.Lock()
	n.latency = d
	n.mu.Unlock()
}

// Stall holds every read (connections stay open, data waits) until
// Unstall. Felt is closed when a read is first held.
func (n *Network) Stall() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stall == nil {
		n.stall = make(chan struct{})
		n.hit = make(chan struct{})
	}
}

// Unstall releases the reads held by Stall.
func (n *Network) Unstall() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stall != nil {
		close(n.stall)
		n.stall = nil
	}
}

// Felt returns a channel closed once the fault set last (Cut or Stall) has
// been felt by a client: a dial refused, or a read held.
func (n *Network) Felt() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hit
}

func (n *Network) feltLocked() {
	select {
	case <-n.hit:
	default:
		close(n.hit)
	}
}

// conn is a connection subject to the network's faults.
type conn struct {
	net.Conn
	n      *Network
	once   sync.Once
	closed chan struct{}
}

func (c *conn) faults(reading bool) (time.Duration, chan struct{}) {
	c.n.mu.Lock()
	defer c.n.mu.Unlock()
	if reading && c.n.stall != nil {
		c.n.feltLocked()
		return c.n.latency, c.n.stall
	}
	return c.n.latency, nil
}

func (c *conn) Read(b []byte) (int, error) {
	lat, stall := c.faults(true)
	if stall != nil {
		select {
		case <-stall:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	if lat > 0 {
		time.Sleep(lat)
	}
	return c.Conn.Read(b)
}

func (c *conn) Write(b []byte) (int, error) {
	if lat, _ := c.faults(false); lat > 0 {
		time.Sleep(lat)
	}
	return c.Conn.Write(b)
}

func (c *conn) shut() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (c *conn) Close() error {
	c.n.mu.Lock()
	delete(c.n.conns, c)
	c.n.mu.Unlock()
	err := c.shut()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
