package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/kafka"
	"github.com/switchboard-go/switchboard/transport"
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func msg(id, key, body string) *transport.Message {
	return &transport.Message{ID: id, Key: key, Body: []byte(body), Time: time.Now()}
}

func send(t testing.TB, tr transport.Transport, a transport.Address, msgs ...*transport.Message) {
	t.Helper()
	if err := tr.Send(ctxT(t, 30*time.Second), a, msgs); err != nil {
		t.Fatalf("send to %s: %v", a, err)
	}
}

func subscribe(t testing.TB, tr transport.Transport, a transport.Address, group string) transport.Subscription {
	t.Helper()
	s, err := tr.Subscribe(ctxT(t, 30*time.Second), a, group, transport.SubscribeOptions{MaxInFlight: 64})
	if err != nil {
		t.Fatalf("subscribe %s/%s: %v", a, group, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// recv receives n messages (acking them when ack) within 30s.
func recv(t testing.TB, s transport.Subscription, n int, ack bool) []*transport.Message {
	t.Helper()
	ctx := ctxT(t, 30*time.Second)
	var out []*transport.Message
	for len(out) < n {
		ms, err := s.Receive(ctx, n-len(out))
		if err != nil {
			t.Fatalf("receive (%d of %d so far): %v", len(out), n, err)
		}
		if ack {
			ids := make([]any, len(ms))
			for i, m := range ms {
				ids[i] = m.AckID
			}
			if err := s.Ack(ctx, ids); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
		out = append(out, ms...)
	}
	return out
}

// expectNone checks that nothing arrives within d.
func expectNone(t testing.TB, s transport.Subscription, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ms, err := s.Receive(ctx, 10)
	if err == nil {
		t.Fatalf("unexpected message(s): %d, first %q", len(ms), ms[0].ID)
	}
}

func ids(ms []*transport.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestURL(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ url, want string }{
		{"kafka://h:9092?bogus=1", "bogus"},
		{"kafka://h:9092?partitions=x", "partitions"},
		{"kafka://h:9092?balancer=hash", "balancer"},
		{"kafka://h:9092?sasl=gssapi", "sasl"},
		{"kafka://u:s3cret@h:9092?sasl=kerberos", "sasl"},
		{"kafka://u:s3cret@h:9092", "sasl"},
		{"kafka://h:9092?session_timeout=-1s", "session_timeout"},
		{"kafka://?partitions=1", "broker"},
	} {
		_, err := transport.Open(ctx, tc.url)
		if !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", tc.url, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %q should name %q and hold no password", tc.url, err, tc.want)
		}
	}
	_, err := transport.Open(ctx, "kafka://h:9092?bogus=1")
	_ = err
	if !strings.Contains(err.Error(), "partitions") || !strings.Contains(err.Error(), "balancer") {
		t.Errorf("unknown option error should list the accepted ones: %v", err)
	}
	u, err := url.Parse("kafka://alice:pw@h1:9093,h2:9092?sasl=scram-sha-512&tls=true&partitions=6&replication=3&balancer=murmur2&client_id=svc&batch_timeout=5ms")
	if err != nil {
		t.Fatal(err)
	}
	brokers, o, err := kafka.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(brokers, ",") != "h1:9093,h2:9092" || o.SASL == nil || o.TLS == nil || o.Partitions != 6 ||
		o.Replication != 3 || o.Balancer != "murmur2" || o.ClientID != "svc" || o.BatchTimeout != 5*time.Millisecond {
		t.Errorf("ParseURL: %v %+v", brokers, o)
	}
	// batch_timeout=0 is the default, no linger; a negative one is invalid.
	if _, o, err := kafka.ParseURL(&url.URL{Scheme: "kafka", Host: "h:9092", RawQuery: "batch_timeout=0"}); err != nil || o.BatchTimeout != 0 {
		t.Errorf("batch_timeout=0: %v %v", o.BatchTimeout, err)
	}
	if _, _, err := kafka.ParseURL(&url.URL{Scheme: "kafka", Host: "h:9092", RawQuery: "batch_timeout=-1ms"}); !errors.Is(err, transport.ErrInvalid) {
		t.Errorf("batch_timeout=-1ms: %v, want ErrInvalid", err)
	}
}

func TestRoundTrip(t *testing.T) {
	tr := openT(t)
	topic := transport.Topic(unique("rt"))
	s := subscribe(t, tr, topic, "g1")
	tm := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	full := &transport.Message{
		ID: "id-1", Key: "k1", Body: []byte{0, 1, 2, 255, 'x'},
		Headers:     map[string]string{"h1": "v1", "sb-attempt": "2", "empty": ""},
		ContentType: "application/octet-stream", Type: "order.created", Version: "2", Time: tm,
		CorrelationID: "c-1", ReplyTo: "reply.x-1",
	}
	empty := &transport.Message{ID: "id-2", Time: tm}
	send(t, tr, topic, full, empty)
	got := recv(t, s, 2, true)
	byID := map[string]*transport.Message{}
	for _, m := range got {
		byID[m.ID] = m
	}
	g := byID["id-1"]
	if g == nil || g.Key != full.Key || !bytes.Equal(g.Body, full.Body) || g.ContentType != full.ContentType ||
		g.Type != full.Type || g.Version != full.Version || !g.Time.Equal(tm) || g.CorrelationID != full.CorrelationID ||
		g.ReplyTo != full.ReplyTo || fmt.Sprint(g.Headers) != fmt.Sprint(full.Headers) {
		t.Errorf("round trip:\n got %+v\nwant %+v", g, full)
	}
	e := byID["id-2"]
	if e == nil || len(e.Body) != 0 || e.Key != "" || len(e.Headers) != 0 || !e.Time.Equal(tm) {
		t.Errorf("empty message: %+v", e)
	}
}

func TestGroupSemantics(t *testing.T) {
	tr := openT(t)
	topic := transport.Topic(unique("grp"))
	// One key: one partition, so the order is defined.
	send(t, tr, topic, msg("before", "k", "x")) // before any group: nobody gets it
	a := subscribe(t, tr, topic, "a")
	send(t, tr, topic, msg("m1", "k", "x"))
	b := subscribe(t, tr, topic, "b") // declared after m1
	send(t, tr, topic, msg("m2", "k", "x"))
	if got := ids(recv(t, a, 2, true)); strings.Join(got, ",") != "m1,m2" {
		t.Errorf("group a got %v, want m1,m2", got)
	}
	if got := ids(recv(t, b, 1, true)); got[0] != "m2" {
		t.Errorf("group b got %v, want m2", got)
	}
	expectNone(t, b, 300*time.Millisecond)
	// Durable: close b, publish, subscribe again.
	_ = b.Close()
	send(t, tr, topic, msg("m3", "k", "x"))
	b2 := subscribe(t, tr, topic, "b")
	if got := ids(recv(t, b2, 1, true)); got[0] != "m3" {
		t.Errorf("group b after resubscribe got %v, want m3", got)
	}
}

func TestSharedGroup(t *testing.T) {
	tr := openT(t)
	tr2 := openT(t)
	topic := transport.Topic(unique("shared"))
	s1 := subscribe(t, tr, topic, "g")
	s2 := subscribe(t, tr2, topic, "g")
	const n = 60
	for i := 0; i < n; i++ {
		send(t, tr, topic, msg(fmt.Sprint(i), fmt.Sprint("key", i), "x"))
	}
	seen := map[string]int{}
	ctx := ctxT(t, 60*time.Second)
	type res struct {
		ms  []*transport.Message
		err error
	}
	ch := make(chan res, 100)
	for _, s := range []transport.Subscription{s1, s2} {
		go func() {
			for {
				ms, err := s.Receive(ctx, 10)
				if err == nil {
					ids := make([]any, len(ms))
					for i, m := range ms {
						ids[i] = m.AckID
					}
					err = s.Ack(ctx, ids)
				}
				ch <- res{ms, err}
				if err != nil {
					return
				}
			}
		}()
	}
	per := [2]int{}
	for len(seen) < n {
		r := <-ch
		if r.err != nil {
			t.Fatalf("receive: %v (seen %d)", r.err, len(seen))
		}
		for _, m := range r.ms {
			seen[m.ID]++
		}
		_ = per
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("%d messages, %d duplicates (rebalance while joining)", n, dups)
	_ = s1.Close()
	_ = s2.Close()
}

func TestQueue(t *testing.T) {
	tr := openT(t)
	tr2 := openT(t)
	q := transport.Queue(unique("q"))
	start := time.Now()
	err := tr.Send(ctxT(t, 10*time.Second), q, []*transport.Message{msg("x", "", "")})
	if !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("send to undeclared queue: %v, want ErrNotFound", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("ErrNotFound took %v", d)
	}
	if err := tr2.Declare(ctxT(t, 10*time.Second), q); err != nil {
		t.Fatal(err)
	}
	// Declared by another client: tr must see it now.
	send(t, tr, q, msg("q1", "", "a"), msg("q2", "", "b"))
	// A topic of the same name is another destination.
	send(t, tr, transport.Topic(q.Name), msg("t1", "", ""))
	s := subscribe(t, tr2, q, "")
	if got := ids(recv(t, s, 2, true)); strings.Join(got, ",") != "q1,q2" {
		t.Errorf("queue got %v", got)
	}
	expectNone(t, s, 300*time.Millisecond)
}

func TestNackAndCloseRedeliver(t *testing.T) {
	tr := openT(t)
	q := transport.Queue(unique("nack"))
	s := subscribe(t, tr, q, "")
	send(t, tr, q, msg("a", "", ""), msg("b", "", ""), msg("c", "", ""))
	got := recv(t, s, 3, false)
	ctx := ctxT(t, 10*time.Second)
	// ack a, nack b, leave c unsettled: b and c come back.
	if err := s.Ack(ctx, []any{got[0].AckID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Nack(ctx, []any{got[1].AckID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Receive(ctx, 1); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("receive after close: %v", err)
	}
	s2 := subscribe(t, tr, q, "")
	if got := ids(recv(t, s2, 2, true)); strings.Join(got, ",") != "b,c" {
		t.Errorf("redelivered %v, want b,c", got)
	}
	_ = s2.Close()
	s3 := subscribe(t, tr, q, "")
	expectNone(t, s3, 500*time.Millisecond)
}

func TestNackRedeliversToSameSubscription(t *testing.T) {
	tr := openT(t)
	topic := transport.Topic(unique("nack2"))
	s := subscribe(t, tr, topic, "g")
	send(t, tr, topic, msg("a", "k", ""), msg("b", "k", ""), msg("c", "k", ""))
	got := recv(t, s, 3, false)
	ctx := ctxT(t, 10*time.Second)
	if err := s.Ack(ctx, []any{got[0].AckID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Nack(ctx, []any{got[1].AckID, got[2].AckID}); err != nil {
		t.Fatal(err)
	}
	if got := ids(recv(t, s, 2, true)); strings.Join(got, ",") != "b,c" {
		t.Errorf("after nack got %v, want b,c", got)
	}
	// Stale acks (of the first deliveries) are ignored.
	if err := s.Ack(ctx, []any{got[1].AckID}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s2 := subscribe(t, tr, topic, "g")
	expectNone(t, s2, 500*time.Millisecond)
}

func TestOrder(t *testing.T) {
	tr := openT(t)
	topic := transport.Topic(unique("order"))
	s := subscribe(t, tr, topic, "g")
	var batch []*transport.Message
	for i := 0; i < 100; i++ {
		batch = append(batch, msg(fmt.Sprintf("b%03d", i), "", ""))
	}
	send(t, tr, topic, batch...)
	for i := 0; i < 30; i++ {
		send(t, tr, topic, msg(fmt.Sprintf("k%03d", i), "same", ""))
	}
	got := recv(t, s, 130, true)
	var b, k []string
	for _, m := range got {
		if m.ID[0] == 'b' {
			b = append(b, m.ID)
		} else {
			k = append(k, m.ID)
		}
	}
	for i := 1; i < len(b); i++ {
		if b[i] < b[i-1] {
			t.Fatalf("batch out of order: %v", b)
		}
	}
	for i := 1; i < len(k); i++ {
		if k[i] < k[i-1] {
			t.Fatalf("key out of order: %v", k)
		}
	}
}

func TestInbox(t *testing.T) {
	req := openT(t)
	resp := openT(t)
	ib, err := req.OpenInbox(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r := msg("r1", "", "pong")
	r.CorrelationID = "c1"
	send(t, resp, transport.Reply(ib.Address()), r)
	got, err := ib.Receive(ctxT(t, 20*time.Second))
	if err != nil || len(got) != 1 || got[0].CorrelationID != "c1" || string(got[0].Body) != "pong" {
		t.Fatalf("inbox got %v %v", got, err)
	}
	addr := ib.Address()
	if err := ib.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ib.Receive(ctxT(t, time.Second)); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("inbox receive after close: %v", err)
	}
	// The inbox is gone: replies are dropped without error.
	if err := resp.Send(ctxT(t, 10*time.Second), transport.Reply(addr), []*transport.Message{msg("late", "", "")}); err != nil {
		t.Errorf("send to closed inbox: %v", err)
	}
}

func TestLimitsAndClose(t *testing.T) {
	tr := openT(t)
	caps := tr.Capabilities()
	if caps.Name != "kafka" || caps.MaxMessageSize <= 0 || !caps.OrderedByKey {
		t.Errorf("caps %+v", caps)
	}
	topic := transport.Topic(unique("size"))
	s := subscribe(t, tr, topic, "g")
	big := &transport.Message{ID: "big", Body: make([]byte, min(caps.MaxMessageSize/2, 256<<10))}
	send(t, tr, topic, big)
	if got := recv(t, s, 1, true); len(got[0].Body) != len(big.Body) {
		t.Errorf("big body %d", len(got[0].Body))
	}
	tooBig := &transport.Message{ID: "x", Body: make([]byte, caps.MaxMessageSize+1)}
	if err := tr.Send(ctxT(t, 5*time.Second), topic, []*transport.Message{tooBig}); !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Errorf("too big: %v", err)
	}
	// Largest message: accepted by the broker.
	max := &transport.Message{ID: "max", Body: make([]byte, caps.MaxMessageSize-3)}
	send(t, tr, topic, max)
	if got := recv(t, s, 1, true); len(got[0].Body) != len(max.Body) {
		t.Errorf("max body %d", len(got[0].Body))
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	_ = tr.Close()
	ctx := ctxT(t, 5*time.Second)
	if err := tr.Send(ctx, topic, []*transport.Message{msg("x", "", "")}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
	if _, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 1}); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("subscribe after close: %v", err)
	}
	if err := tr.Declare(ctx, transport.Queue("q")); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("declare after close: %v", err)
	}
	if _, err := tr.OpenInbox(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("inbox after close: %v", err)
	}
	if _, err := s.Receive(ctx, 1); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("receive after transport close: %v", err)
	}
}

func TestTeardown(t *testing.T) {
	tr := openT(t)
	p := unique("td") + "-"
	send(t, tr, transport.Topic(p+"a"), msg("x", "", ""))
	s := subscribe(t, tr, transport.Topic(p+"a"), "g")
	if err := tr.Declare(ctxT(t, 10*time.Second), transport.Queue(p+"q_1")); err != nil {
		t.Fatal(err)
	}
	other := transport.Queue(unique("keep"))
	if err := tr.Declare(ctxT(t, 10*time.Second), other); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := teardown(ctxT(t, 20*time.Second), tr, p); err != nil {
		t.Fatal(err)
	}
	tr2 := openT(t)
	ctx := ctxT(t, 10*time.Second)
	if err := tr2.Send(ctx, transport.Queue(p+"q_1"), []*transport.Message{msg("x", "", "")}); !errors.Is(err, transport.ErrNotFound) {
		t.Errorf("queue after teardown: %v", err)
	}
	send(t, tr2, other, msg("x", "", ""))
}
