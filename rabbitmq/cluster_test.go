package rabbitmq

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/internal/testpki"
	"github.com/switchboard-go/switchboard/transport"
)

// TestCluster starts a three-node RabbitMQ cluster of its own (see
// nodes_test.go; node 3 also has a TLS listener with certificates the test
// generates) and proves what the adapter does with it:
//
//   - TLS: amqps:// with verification on succeeds; a certificate authority
//     that did not sign the broker's certificate fails with ErrTLS.
//   - NodeLoss: 10,000 messages go through a quorum queue while the node
//     both clients are connected to is stopped and later restarted; every
//     confirmed message is consumed, the clients resume by themselves on
//     the other nodes, duplicates and recovery times are reported.
func TestCluster(t *testing.T) {
	pki := testpki.New(t, t.TempDir())
	ns := startCluster(t, 3, map[int]string{2: tlsConf(t, pki, nodeTLSPort)})
	t.Run("TLS", func(t *testing.T) { testClusterTLS(t, pki) })
	t.Run("QuorumGroupSize", func(t *testing.T) { testClusterGroupSize(t, ns) })
	t.Run("NodeLoss", func(t *testing.T) { testClusterNodeLoss(t, ns) })
}

func testClusterTLS(t *testing.T, pki *testpki.PKI) {
	u := "amqps://guest:guest@localhost:" + strconv.Itoa(nodeTLSPort) + "/"
	ctx := ctxT(t, 30*time.Second)

	// Verification on, with the CA that signed the broker's certificate,
	// given as Options.TLSConfig and as the URL's cacertfile.
	for name, open := range map[string]func() (*Transport, error){
		"Options.TLSConfig": func() (*Transport, error) {
			return Open(ctx, u, &Options{TLSConfig: &tls.Config{RootCAs: pki.CAPool, MinVersion: tls.VersionTLS12}})
		},
		"cacertfile": func() (*Transport, error) { return Open(ctx, u+"?cacertfile="+pki.CAFile, nil) },
	} {
		tr, err := open()
		if err != nil {
			t.Fatalf("%s: amqps with the right CA: %v", name, err)
		}
		if err := tr.Ping(ctx); err != nil {
			t.Errorf("%s: ping: %v", name, err)
		}
		q := transport.Queue("sbt-tls-" + strconv.FormatInt(time.Now().UnixNano(), 36))
		s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.Send(ctx, q, []*transport.Message{{ID: "tls-1", Body: []byte("over TLS")}}); err != nil {
			t.Fatal(err)
		}
		got := recvN(t, ctx, s, 1, true)
		if string(got[0].Body) != "over TLS" {
			t.Errorf("%s: got %q", name, got[0].Body)
		}
		_ = s.Close()
		if ch, err := tr.topo.current(ctx); err == nil {
			_, _ = ch.QueueDelete(q.Name, false, false, false)
		}
		_ = tr.Close()
		t.Logf("%s: amqps with verification: connected, published, consumed", name)
	}

	// The wrong CA: a typed error, ErrTLS, that also unwraps to the
	// standard library's certificate verification error.
	for name, open := range map[string]func() (*Transport, error){
		"Options.TLSConfig": func() (*Transport, error) {
			return Open(ctx, u, &Options{TLSConfig: &tls.Config{RootCAs: pki.OtherCAPool, MinVersion: tls.VersionTLS12}})
		},
		"cacertfile": func() (*Transport, error) { return Open(ctx, u+"?cacertfile="+pki.OtherCAFile, nil) },
	} {
		tr, err := open()
		if err == nil {
			_ = tr.Close()
			t.Fatalf("%s: amqps with the wrong CA connected", name)
		}
		var cv *tls.CertificateVerificationError
		if !errors.Is(err, transport.ErrTLS) || !errors.As(err, &cv) || errors.Is(err, transport.ErrUnavailable) {
			t.Errorf("%s: wrong CA: want ErrTLS wrapping *tls.CertificateVerificationError, not ErrUnavailable; got %v", name, err)
		}
		t.Logf("%s: wrong CA: %v", name, err)
	}

	// A wrong password over TLS: ErrUnauthorized.
	bad := "amqps://guest:wrong-sekrit@localhost:" + strconv.Itoa(nodeTLSPort) + "/?cacertfile=" + pki.CAFile
	if tr, err := Open(ctx, bad, nil); err == nil {
		_ = tr.Close()
		t.Error("wrong password connected")
	} else if !errors.Is(err, transport.ErrUnauthorized) || errors.Is(err, transport.ErrInvalid) {
		t.Errorf("wrong password: want ErrUnauthorized (and not ErrInvalid), got %v", err)
	} else {
		t.Logf("wrong password: %v", err)
	}
}

// testClusterGroupSize: group queues are quorum queues with a member on
// every node by default; quorum_initial_group_size=2 makes two members.
func testClusterGroupSize(t *testing.T, ns *nodeSet) {
	ctx := ctxT(t, 30*time.Second)
	for _, tc := range []struct {
		params string
		want   int
	}{{"", 3}, {"quorum_initial_group_size=2", 2}} {
		tr, err := Open(ctx, ns.url(tc.params), nil)
		if err != nil {
			t.Fatal(err)
		}
		topic := "sbt-gs-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		s, err := tr.Subscribe(ctx, transport.Topic(topic), "g", transport.SubscribeOptions{MaxInFlight: 1})
		if err != nil {
			t.Fatal(err)
		}
		// A partitioned group: one single-active-consumer quorum queue
		// per partition (see partitions.go), each with the members.
		qs := tr.PartitionQueueNames(topic, "g")
		for _, q := range qs {
			members, err := ns.queueMembers(1, q)
			if err != nil {
				t.Fatal(err)
			}
			if len(members) != tc.want {
				t.Errorf("%q: partition queue %s members %v, want %d", tc.params, q, members, tc.want)
			}
			t.Logf("URL parameters %q: partition queue %s has %d members: %v", tc.params, q, len(members), members)
		}
		_ = s.Close()
		if ch, err := tr.topo.current(ctx); err == nil {
			for _, q := range append(qs, tr.MembersQueueName(topic, "g")) {
				_, _ = ch.QueueDelete(q, false, false, false)
			}
			_ = ch.ExchangeDelete(topic, false, false)
			_ = ch.ExchangeDelete(foreignExchangeName(topic), false, false)
		}
		_ = tr.Close()
	}
}

// connEvents records when a transport's connection was lost and when it
// reconnected, from the adapter's log.
type connEvents struct {
	mu    sync.Mutex
	lost  []time.Time
	again []time.Time
	hosts []string
	nacks int
	dbg   func(string)
}

func (e *connEvents) Enabled(context.Context, slog.Level) bool { return true }
func (e *connEvents) WithAttrs([]slog.Attr) slog.Handler       { return e }
func (e *connEvents) WithGroup(string) slog.Handler            { return e }
func (e *connEvents) Handle(_ context.Context, r slog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dbg != nil && r.Level >= slog.LevelInfo {
		line := r.Time.Format("15:04:05.000") + " " + r.Level.String() + " " + r.Message
		r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
		e.dbg(line)
	}
	switch r.Message {
	case "rabbitmq: publish nacked, retrying on a new channel":
		e.nacks++
	case "rabbitmq: connection lost":
		e.lost = append(e.lost, r.Time)
	case "rabbitmq: reconnected":
		e.again = append(e.again, r.Time)
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "host" {
				e.hosts = append(e.hosts, a.Value.String())
			}
			return true
		})
	}
	return nil
}

func (e *connEvents) firstLoss() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.lost) == 0 {
		return time.Time{}, false
	}
	return e.lost[0], true
}

// clusterLedger records what the cluster confirmed and what was consumed.
type clusterLedger struct {
	mu     sync.Mutex
	acked  map[string]bool
	at     map[string]time.Time // when the message's Send returned nil
	got    map[string]int
	nAcked int
	poke   chan struct{}

	// Recovery: the first successful send completed, and the first
	// delivery received, after the connection loss.
	firstSend, firstRecv time.Time
}

func (l *clusterLedger) progress() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nAcked
}

func (l *clusterLedger) missing() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.acked {
		if l.got[id] == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (l *clusterLedger) dups() (n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.got {
		n += max(0, c-1)
	}
	return n
}

func testClusterNodeLoss(t *testing.T, ns *nodeSet) {
	const total = 10000
	// The adapters' log (Info and above), shown when the test fails.
	var logMu sync.Mutex
	var logLines []string
	logTo := func(who string) func(string) {
		return func(line string) {
			logMu.Lock()
			logLines = append(logLines, who+": "+line)
			logMu.Unlock()
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			logMu.Lock()
			defer logMu.Unlock()
			t.Logf("adapter log:\n%s", strings.Join(logLines, "\n"))
		}
	})
	pubEv, subEv := &connEvents{dbg: logTo("publisher")}, &connEvents{dbg: logTo("consumer")}
	open := func(ev *connEvents, name string) *Transport {
		ctx := ctxT(t, 30*time.Second)
		tr, err := Open(ctx, ns.url("reconnect_max=500ms&connection_name="+name), &Options{Logger: slog.New(ev)})
		if err != nil {
			t.Fatalf("open %s: %v", ns.url(""), err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	pub, sub := open(pubEv, "sbt-cluster-pub"), open(subEv, "sbt-cluster-sub")
	for _, tr := range []*Transport{pub, sub} {
		tr.m.mu.Lock()
		host := tr.m.host
		tr.m.mu.Unlock()
		if host != 0 {
			t.Fatalf("connected to host %d, want the URL's first host", host)
		}
	}
	topic := transport.Topic("sbt-cluster-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout())
	defer cancel()
	s, err := sub.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 200})
	if err != nil {
		t.Fatal(err)
	}
	l := &clusterLedger{acked: map[string]bool{}, at: map[string]time.Time{}, got: map[string]int{}, poke: make(chan struct{}, 1)}

	// Consumer.
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		for {
			ms, err := s.Receive(ctx, 100)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, transport.ErrClosed) {
					t.Errorf("receive: %v", err)
				}
				return
			}
			now := time.Now()
			ids := make([]any, len(ms))
			l.mu.Lock()
			for i, m := range ms {
				l.got[m.ID]++
				ids[i] = m.AckID
			}
			if loss, ok := subEv.firstLoss(); ok && l.firstRecv.IsZero() && now.After(loss) {
				l.firstRecv = now
			}
			l.mu.Unlock()
			select {
			case l.poke <- struct{}{}:
			default:
			}
			_ = s.Ack(ctx, ids) // a failed ack means a redelivery, which the ledger counts
		}
	}()

	// Gates: the producer publishes across every phase of the failure,
	// and is publishing when the node stops (publishes in flight then, and
	// the new channels' first publishes while the queues elect new
	// leaders, are what failover must survive).
	stopping, restarting, restarted := make(chan struct{}), make(chan struct{}), make(chan struct{})
	gate := func(i int) <-chan struct{} {
		switch {
		case i >= 8000:
			return restarted
		case i >= 6500:
			return restarting
		case i >= 5000:
			return stopping
		}
		return nil
	}
	produced := make(chan struct{})
	var failures int
	go func() {
		defer close(produced)
		const batch = 20
		for i := 0; i < total; i += batch {
			if g := gate(i); g != nil {
				select {
				case <-g:
				case <-ctx.Done():
					return
				}
			}
			msgs := make([]*transport.Message, 0, batch)
			for j := i; j < i+batch; j++ {
				msgs = append(msgs, &transport.Message{ID: fmt.Sprintf("m%05d", j), Key: "k" + strconv.Itoa(j%7), Body: []byte("x")})
			}
			for {
				sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
				err := pub.Send(sctx, topic, msgs)
				scancel()
				if err == nil {
					break
				}
				failures++
				if failures <= 5 || failures%50 == 0 {
					logTo("test")(fmt.Sprintf("%s send %d failed (%d failures): %v", time.Now().Format("15:04:05.000"), i, failures, err))
				}
				if ctx.Err() != nil {
					return
				}
				time.Sleep(20 * time.Millisecond) // pace retries while the clients fail over
			}
			now := time.Now()
			l.mu.Lock()
			for _, m := range msgs {
				l.acked[m.ID] = true
				l.at[m.ID] = now
			}
			l.nAcked += len(msgs)
			if loss, ok := pubEv.firstLoss(); ok && l.firstSend.IsZero() && now.After(loss) {
				l.firstSend = now
			}
			l.mu.Unlock()
		}
	}()

	// Stop node 1, which both clients are connected to, once messages
	// flow; start it again while they flow on the other nodes.
	waitFor := func(what string, cond func() bool) {
		for !cond() {
			select {
			case <-l.poke:
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
				if f := os.Getenv("SWITCHBOARD_CLUSTER_DUMP"); f != "" {
					if out, err := os.Create(f); err == nil {
						_ = pprof.Lookup("goroutine").WriteTo(out, 2)
						_ = out.Close()
					}
				}
				for _, i := range []int{1, 2} {
					out, err := ns.output(time.Minute, "ctl", ns.base, ns.names[i], "list_queues", "name", "type", "leader", "members", "online", "messages", "consumers")
					t.Logf("queues seen by %s: %s %v", ns.names[i], out, err)
					out, err = ns.output(time.Minute, "ctl", ns.base, ns.names[i], "list_bindings")
					t.Logf("bindings seen by %s: %s %v", ns.names[i], out, err)
				}
				t.Fatalf("timed out waiting for %s (%d confirmed)", what, l.progress())
			}
		}
	}
	waitFor("2,000 confirmed", func() bool { return l.progress() >= 2000 })
	t0 := time.Now()
	close(stopping)
	if err := ns.stop(0); err != nil {
		t.Fatal(err)
	}
	t.Logf("node %s stopped by name in %v, at %d confirmed", ns.names[0], time.Since(t0).Round(time.Millisecond), l.progress())
	waitFor("publishing on the other nodes", func() bool { return l.progress() >= 6500 })
	close(restarting)
	t0 = time.Now()
	if err := ns.restart(0); err != nil {
		t.Fatal(err)
	}
	t.Logf("node %s restarted in %v, at %d confirmed", ns.names[0], time.Since(t0).Round(time.Millisecond), l.progress())
	close(restarted)

	<-produced
	deadline := time.After(2 * time.Minute)
	for {
		miss := l.missing()
		if len(miss) == 0 {
			break
		}
		select {
		case <-l.poke:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			cancel()
			<-consumed
			_ = s.Close()
			reportLost(t, ns, sub, topic.Name, miss, l)
			t.Fatalf("%d confirmed messages never consumed (LOST), first: %v", len(miss), miss[:min(10, len(miss))])
		}
	}
	cancel()
	<-consumed
	_ = s.Close()

	l.mu.Lock()
	acked := len(l.acked)
	firstSend, firstRecv := l.firstSend, l.firstRecv
	l.mu.Unlock()
	if acked != total {
		t.Fatalf("only %d of %d messages were confirmed", acked, total)
	}
	pubLoss, ok1 := pubEv.firstLoss()
	subLoss, ok2 := subEv.firstLoss()
	if !ok1 || !ok2 {
		t.Fatalf("a client never lost its connection (publisher %v, consumer %v): the stopped node was not theirs", ok1, ok2)
	}
	for name, ev := range map[string]*connEvents{"publisher": pubEv, "consumer": subEv} {
		ev.mu.Lock()
		t.Logf("%s: connection lost %d time(s), reconnected to %v", name, len(ev.lost), ev.hosts)
		if len(ev.hosts) == 0 || ev.hosts[0] == "127.0.0.1:"+strconv.Itoa(ns.ports[0]) {
			t.Errorf("%s did not fail over to another node: %v", name, ev.hosts)
		}
		ev.mu.Unlock()
	}
	pubEv.mu.Lock()
	nacks := pubEv.nacks
	pubEv.mu.Unlock()
	t.Logf("RESULT rabbitmq 3-node cluster, node loss + restart: %d published and confirmed, 0 lost, %d duplicates, %d failed sends retried, %d nacked publish rounds retried on a new channel",
		acked, l.dups(), failures, nacks)
	t.Logf("RESULT recovery (connection loss -> first successful publish): %v", firstSend.Sub(pubLoss).Round(time.Millisecond))
	t.Logf("RESULT recovery (connection loss -> first delivery consumed): %v", firstRecv.Sub(subLoss).Round(time.Millisecond))

	if ch, err := sub.topo.current(ctxT(t, 10*time.Second)); err == nil {
		for _, q := range append(sub.PartitionQueueNames(topic.Name, "g"), sub.MembersQueueName(topic.Name, "g")) {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Logf("delete %s: %v", q, err)
			}
		}
		_ = ch.ExchangeDelete(foreignExchangeName(sub.ExchangeName(topic.Name)), false, false)
		_ = ch.ExchangeDelete(sub.ExchangeName(topic.Name), false, false)
	}
}

// clusterTimeout bounds NodeLoss: 4 minutes, or SWITCHBOARD_CLUSTER_TIMEOUT.
func clusterTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SWITCHBOARD_CLUSTER_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return 4 * time.Minute
}

// reportLost says, for each message confirmed and never consumed, its
// key, partition and when its Send returned, and whether it is still in
// one of the group's queues (a message stuck, not lost), read with
// basic.get on a node that runs, once the subscription is closed.
func reportLost(t *testing.T, ns *nodeSet, tr *Transport, topic string, miss []string, l *clusterLedger) {
	t.Helper()
	l.mu.Lock()
	for _, id := range miss[:min(20, len(miss))] {
		seq, _ := strconv.Atoi(strings.TrimPrefix(id, "m"))
		key := "k" + strconv.Itoa(seq%7)
		t.Logf("LOST %s: key %s, partition %d (routing key %s), Send returned nil at %s",
			id, key, partitionOf(key, id), topicRoutingKey(key, id), l.at[id].Format("15:04:05.000"))
	}
	l.mu.Unlock()
	for _, i := range []int{1, 2} {
		out, err := ns.output(time.Minute, "ctl", ns.base, ns.names[i], "list_queues", "name", "type", "leader", "members", "online", "messages_ready", "messages_unacknowledged", "consumers")
		t.Logf("queues seen by %s:\n%s %v", ns.names[i], out, err)
	}
	out, err := ns.output(time.Minute, "ctl", ns.base, ns.names[1], "list_bindings", "source_name", "destination_name", "routing_key")
	t.Logf("bindings seen by %s:\n%s %v", ns.names[1], out, err)
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:" + strconv.Itoa(ns.ports[1]) + "/")
	if err != nil {
		t.Logf("probe: %v", err)
		return
	}
	defer conn.Close()
	want := map[string]bool{}
	for _, id := range miss {
		want[id] = true
	}
	for _, q := range tr.PartitionQueueNames(topic, "g") {
		ch, err := conn.Channel()
		if err != nil {
			t.Logf("probe: %v", err)
			return
		}
		n := 0
		for {
			d, ok, err := ch.Get(q, false)
			if err != nil {
				t.Logf("probe %s: %v", q, err)
				break
			}
			if !ok {
				break
			}
			n++
			if want[d.MessageId] {
				t.Logf("FOUND %s still in %s (redelivered %v, headers %v)", d.MessageId, q, d.Redelivered, d.Headers)
			}
		}
		t.Logf("probe: %d messages left in %s", n, q)
		_ = ch.Close() // returns them
	}
}
