package rabbitmq

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/internal/wait"
	"github.com/switchboard-go/switchboard/transport"
)

func TestSplitHosts(t *testing.T) {
	for in, want := range map[string][]string{
		"amqp://u:p@h1:5672/v":                     {"amqp://u:p@h1:5672/v"},
		"amqp://u:p@h1:5672,h2:5673,h3:5674/v?x=1": {"amqp://u:p@h1:5672/v?x=1", "amqp://u:p@h2:5673/v?x=1", "amqp://u:p@h3:5674/v?x=1"},
		"amqps://h1,h2/":                           {"amqps://h1:5671/", "amqps://h2:5671/"},
	} {
		got, err := splitHosts(in)
		if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("splitHosts(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"amqp://u:sekrit@h1:5672,,h2:5672/", "amqp://u:sekrit@h1:x,h2:5672/"} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = parseURL(u, Options{})
		if !errors.Is(err, transport.ErrInvalid) || strings.Contains(err.Error(), "sekrit") {
			t.Errorf("parseURL(%q): want ErrInvalid without the password, got %v", in, err)
		}
	}
	for in, want := range map[string]int{"amqp://h/": 0, "amqp://h/?quorum_initial_group_size=3": 3} {
		u, _ := url.Parse(in)
		_, o, err := parseURL(u, Options{})
		if err != nil || o.QuorumInitialGroupSize != want {
			t.Errorf("parseURL(%q): group size %d, %v; want %d", in, o.QuorumInitialGroupSize, err, want)
		}
	}
	for _, in := range []string{"amqp://h/?quorum_initial_group_size=0", "amqp://h/?quorum_initial_group_size=x"} {
		u, _ := url.Parse(in)
		if _, _, err := parseURL(u, Options{}); !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("parseURL(%q): want ErrInvalid, got %v", in, err)
		}
	}
}

// TestHostFailover: a URL with several hosts connects to the first that
// answers, and on connection loss reconnects to the next host of the list.
// Both names reach the local broker; a dial hook refuses the first and
// cuts connections on demand.
func TestHostFailover(t *testing.T) {
	base, err := url.Parse(brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	realHost := base.Host
	var (
		mu      sync.Mutex
		refuse  = map[string]bool{"127.0.0.1:1": true}
		conns   []net.Conn
		dialled []string
	)
	dial := func(network, addr string) (net.Conn, error) {
		mu.Lock()
		dialled = append(dialled, addr)
		bad := refuse[addr]
		mu.Unlock()
		if bad {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("refused by the test")}
		}
		c, err := amqp.DefaultDial(5*time.Second)(network, realHost)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}
	// Three "hosts": one refused, then two aliases of the local broker.
	u := *base
	u.Host = "127.0.0.1:1,alias-a:5672,alias-b:5672"
	u.RawQuery = "reconnect_max=200ms"
	ctx := ctxT(t, 30*time.Second)
	tr, err := Open(ctx, u.String(), &Options{Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	host := func() int {
		tr.m.mu.Lock()
		defer tr.m.mu.Unlock()
		return tr.m.host
	}
	if h := host(); h != 1 {
		t.Fatalf("connected to host %d, want 1 (the first that answers)", h)
	}
	if err := tr.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Cut the connection: the next host (alias-b) takes over.
	_, gen := tr.m.current()
	mu.Lock()
	for _, c := range conns {
		_ = c.Close()
	}
	mu.Unlock()
	for {
		c, g := tr.m.current()
		if c != nil && g > gen {
			break
		}
		if !wait.Sleep(ctx, nil, 10*time.Millisecond) {
			t.Fatal("no reconnection")
		}
	}
	if h := host(); h != 2 {
		t.Fatalf("reconnected to host %d, want 2 (the one after the lost host)", h)
	}
	// The publisher works on the new connection.
	q := transport.Queue("sbt-failover-" + time.Now().Format("150405.000000"))
	if err := tr.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(ctx, q, []*transport.Message{{ID: "1"}}); err != nil {
		t.Fatal(err)
	}
	if ch, err := tr.topo.current(ctx); err == nil {
		_, _ = ch.QueueDelete(q.Name, false, false, false)
	}
	// Lose it again: the list wraps around, skipping the refused host.
	_, gen = tr.m.current()
	mu.Lock()
	for _, c := range conns {
		_ = c.Close()
	}
	mu.Unlock()
	for {
		c, g := tr.m.current()
		if c != nil && g > gen {
			break
		}
		if !wait.Sleep(ctx, nil, 10*time.Millisecond) {
			t.Fatal("no reconnection")
		}
	}
	if h := host(); h != 1 {
		t.Fatalf("reconnected to host %d, want 1 (wrapping around past the refused host 0)", h)
	}
	mu.Lock()
	t.Logf("dialled, in order: %v", dialled)
	mu.Unlock()
}

// TestPing: Ping answers on an open transport, fails with ErrUnavailable
// while reconnecting, and with ErrClosed after Close.
func TestPing(t *testing.T) {
	base := brokerURL(t)
	ctx := ctxT(t, 20*time.Second)
	var mu sync.Mutex
	var conns []net.Conn
	refuse := false
	dial := func(network, addr string) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if refuse {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("refused by the test")}
		}
		c, err := amqp.DefaultDial(5*time.Second)(network, addr)
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	tr, err := Open(ctx, base, &Options{Dial: dial, ReconnectMaxDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	mu.Lock()
	refuse = true
	for _, c := range conns {
		_ = c.Close()
	}
	mu.Unlock()
	for {
		err := tr.Ping(ctx)
		if errors.Is(err, transport.ErrUnavailable) {
			t.Logf("while reconnecting: %v", err)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("ping never failed while the broker was unreachable: %v", err)
		}
		wait.Sleep(ctx, nil, 10*time.Millisecond)
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	for tr.Ping(ctx) != nil {
		if !wait.Sleep(ctx, nil, 20*time.Millisecond) {
			t.Fatal("ping never recovered")
		}
	}
	_ = tr.Close()
	if err := tr.Ping(context.Background()); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("ping after close: %v", err)
	}
}
