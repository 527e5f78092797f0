package rabbitmq

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/rabbitmq/rabbitmqtest"
	"github.com/switchboard-go/switchboard/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const localURL = "amqp://guest:guest@127.0.0.1:5672/"

// brokerURL finds the broker: SWITCHBOARD_AMQP_URL, else the local one
// if it answers, else testenv.Missing.
func brokerURL(t testing.TB) string {
	t.Helper()
	if u := os.Getenv("SWITCHBOARD_AMQP_URL"); u != "" {
		return u
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second)
	if err != nil {
		testenv.Missing(t, "rabbitmq", "SWITCHBOARD_AMQP_URL is not set and nothing answers on 127.0.0.1:5672 (%v)", err)
	}
	_ = c.Close()
	return localURL
}

// uniq returns a name prefix unique to this test.
func uniq(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := strings.ToLower(t.Name())
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, n)
	if len(n) > 30 {
		n = n[:30]
	}
	return "sbt-" + hex.EncodeToString(b[:]) + "-" + n + "-"
}

// openT opens a transport for a test, deleting what the test declared
// under prefix when it ends.
func openT(t testing.TB, prefix string, params string) *Transport {
	t.Helper()
	u := brokerURL(t)
	if params != "" {
		if strings.Contains(u, "?") {
			u += "&" + params
		} else {
			u += "?" + params
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	tr, err := Open(ctx, u, nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		_ = tr.Close()
		if prefix != "" {
			teardown(t, u, prefix)
		}
	})
	return tr
}

// teardown deletes what this process declared under prefix.
func teardown(t testing.TB, u, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := rabbitmqtest.DeleteDeclared(ctx, u, prefix); err != nil {
		t.Errorf("teardown: %v", err)
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func recvN(t testing.TB, ctx context.Context, s transport.Subscription, n int, ack bool) []*transport.Message {
	t.Helper()
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

func fullMsg(i int) *transport.Message {
	return &transport.Message{
		ID:            fmt.Sprintf("id-%d", i),
		Key:           "key-1",
		Body:          []byte{0, 1, 2, 0xff, byte(i)},
		Headers:       map[string]string{"h1": "v1", "sb-attempt": "3", "ÜNICODE": "välue"},
		ContentType:   "application/octet-stream",
		Type:          "order.created",
		Version:       "2",
		Time:          time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		CorrelationID: "corr-1",
		ReplyTo:       "some-reply-addr",
	}
}

func sameMsg(t testing.TB, want, got *transport.Message) {
	t.Helper()
	if want.ID != got.ID || want.Key != got.Key || !bytes.Equal(want.Body, got.Body) ||
		want.ContentType != got.ContentType || want.Type != got.Type || want.Version != got.Version ||
		!want.Time.Equal(got.Time) || want.CorrelationID != got.CorrelationID || want.ReplyTo != got.ReplyTo {
		t.Fatalf("message mismatch:\nwant %+v\ngot  %+v", want, got)
	}
	if len(want.Headers) != len(got.Headers) {
		t.Fatalf("headers: want %v, got %v", want.Headers, got.Headers)
	}
	for k, v := range want.Headers {
		if got.Headers[k] != v {
			t.Fatalf("header %q: want %q, got %q", k, v, got.Headers[k])
		}
	}
}

func TestRoundTripTopicGroups(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 30*time.Second)
	topic := transport.Topic(p + "orders")
	// A message sent before any group exists reaches none.
	if err := tr.Send(ctx, topic, []*transport.Message{{ID: "early"}}); err != nil {
		t.Fatal(err)
	}
	a, err := tr.Subscribe(ctx, topic, "ga", transport.SubscribeOptions{MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := tr.Subscribe(ctx, topic, "gb", transport.SubscribeOptions{MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var msgs []*transport.Message
	for i := range 5 {
		msgs = append(msgs, fullMsg(i))
	}
	msgs = append(msgs, &transport.Message{ID: "empty"})
	if err := tr.Send(ctx, topic, msgs); err != nil {
		t.Fatal(err)
	}
	for _, s := range []transport.Subscription{a, b} {
		got := recvN(t, ctx, s, len(msgs), true)
		for i := range msgs {
			sameMsg(t, msgs[i], got[i])
			if got[i].DeliveryCount != 1 {
				t.Fatalf("DeliveryCount = %d, want 1", got[i].DeliveryCount)
			}
		}
	}
}

func TestDurableGroupAndRedelivery(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 30*time.Second)
	topic := transport.Topic(p + "t")
	s, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 5})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	// One key: a group's partitions order the messages of one key.
	if err := tr.Send(ctx, topic, []*transport.Message{{ID: "m1", Key: "k"}, {ID: "m2", Key: "k"}}); err != nil {
		t.Fatal(err)
	}
	s, err = tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 5})
	if err != nil {
		t.Fatal(err)
	}
	got := recvN(t, ctx, s, 2, false)
	if got[0].ID != "m1" || got[1].ID != "m2" {
		t.Fatalf("got %s %s", got[0].ID, got[1].ID)
	}
	// Ack m1, nack m2: m2 comes back with DeliveryCount 2.
	if err := s.Ack(ctx, []any{got[0].AckID}); err != nil {
		t.Fatal(err)
	}
	if err := s.Nack(ctx, []any{got[1].AckID}); err != nil {
		t.Fatal(err)
	}
	again := recvN(t, ctx, s, 1, false)
	if again[0].ID != "m2" || again[0].DeliveryCount != 2 {
		t.Fatalf("redelivery: %s count %d", again[0].ID, again[0].DeliveryCount)
	}
	// Close without settling: the next consumer gets it (count 3).
	_ = s.Close()
	s2, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	again = recvN(t, ctx, s2, 1, true)
	if again[0].ID != "m2" || again[0].DeliveryCount != 3 {
		t.Fatalf("after close: %s count %d", again[0].ID, again[0].DeliveryCount)
	}
	// Double ack is harmless.
	if err := s2.Ack(ctx, []any{again[0].AckID}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Receive(ctx, 1); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
}

func TestQueueDeclareAndNotFound(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 30*time.Second)
	missing := transport.Queue(p + "missing")
	start := time.Now()
	err := tr.Send(ctx, missing, []*transport.Message{{ID: "x"}})
	if !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("send to undeclared queue: %v", err)
	}
	t.Logf("not found after %v: %v", time.Since(start), err)
	q := transport.Queue(p + "work.rpc")
	if err := tr.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := tr.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(ctx, q, []*transport.Message{fullMsg(1)}); err != nil {
		t.Fatal(err)
	}
	// Another transport consumes it.
	tr2 := openT(t, "", "")
	s, err := tr2.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := recvN(t, ctx, s, 1, true)
	sameMsg(t, fullMsg(1), got[0])
	// The publisher channel survived the unroutable message.
	if err := tr.Send(ctx, q, []*transport.Message{{ID: "after"}}); err != nil {
		t.Fatal(err)
	}
	got = recvN(t, ctx, s, 1, true)
	if got[0].ID != "after" {
		t.Fatal(got[0].ID)
	}
}

func TestInboxRequestReply(t *testing.T) {
	p := uniq(t)
	client := openT(t, p, "")
	server := openT(t, "", "")
	ctx := ctxT(t, 30*time.Second)
	q := transport.Queue(p + "svc.rpc")
	sub, err := server.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ib, err := client.OpenInbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ib.Close()
	if !strings.HasPrefix(ib.Address(), DirectReplyTo+".") || replyAddrPoison(ib.Address()) {
		t.Fatalf("address %q", ib.Address())
	}
	go func() {
		for {
			ms, err := sub.Receive(ctx, 10)
			if err != nil {
				return
			}
			for _, m := range ms {
				_ = server.Send(ctx, transport.Reply(m.ReplyTo), []*transport.Message{{ID: "re-" + m.ID, CorrelationID: m.ID, Body: m.Body}})
				_ = sub.Ack(ctx, []any{m.AckID})
			}
		}
	}()
	for i := range 3 {
		req := &transport.Message{ID: fmt.Sprint("req", i), ReplyTo: ib.Address(), Body: []byte("ping")}
		if err := client.Send(ctx, q, []*transport.Message{req}); err != nil {
			t.Fatal(err)
		}
		rs, err := ib.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rs[0].CorrelationID != req.ID || string(rs[0].Body) != "ping" {
			t.Fatalf("reply %+v", rs[0])
		}
	}
	// Scatter-gather: a request to a topic with two groups.
	topic := transport.Topic(p + "census")
	for _, g := range []string{"a", "b"} {
		s, err := server.Subscribe(ctx, topic, g, transport.SubscribeOptions{MaxInFlight: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		go func() {
			ms, err := s.Receive(ctx, 1)
			if err != nil {
				return
			}
			_ = server.Send(ctx, transport.Reply(ms[0].ReplyTo), []*transport.Message{{ID: g, CorrelationID: ms[0].ID}})
			_ = s.Ack(ctx, []any{ms[0].AckID})
		}()
	}
	if err := client.Send(ctx, topic, []*transport.Message{{ID: "census-1", ReplyTo: ib.Address()}}); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		rs, err := ib.Receive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			seen[r.ID] = true
		}
	}
	// A request to a queue nobody declared: ErrNotFound, via the inbox channel too.
	err = client.Send(ctx, transport.Queue(p+"nobody.rpc"), []*transport.Message{{ID: "r", ReplyTo: ib.Address()}})
	if !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("request to nobody: %v", err)
	}
	// Replies to a closed inbox are dropped without error.
	addr := ib.Address()
	_ = ib.Close()
	if err := server.Send(ctx, transport.Reply(addr), []*transport.Message{{ID: "late"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ib.Receive(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("inbox receive after close: %v", err)
	}
}

func TestSizeLimitAndErrors(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "max_message_size=1000")
	ctx := ctxT(t, 30*time.Second)
	if tr.Capabilities().MaxMessageSize != 1000 {
		t.Fatal(tr.Capabilities())
	}
	q := transport.Queue(p + "big")
	if err := tr.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	err := tr.Send(ctx, q, []*transport.Message{{Body: make([]byte, 1001)}})
	if !errors.Is(err, transport.ErrMessageTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if err := tr.Send(ctx, q, []*transport.Message{{Body: make([]byte, 500)}}); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{
		"amqp://guest:sekrit@127.0.0.1:5672/?bogus=1",
		"amqp://guest:sekrit@127.0.0.1:5672/?prefetch=x",
		"amqp://guest:sekrit@127.0.0.1:5672/?queue_type=stream",
	} {
		_, err := transport.Open(ctx, raw)
		if !errors.Is(err, transport.ErrInvalid) || strings.Contains(err.Error(), "sekrit") {
			t.Fatalf("%s: %v", raw, err)
		}
	}
	u, _ := url.Parse(brokerURL(t))
	u.User = url.UserPassword("guest", "wrong-sekrit")
	_, err = transport.Open(ctx, u.String())
	if err == nil || strings.Contains(err.Error(), "wrong-sekrit") {
		t.Fatalf("bad password: %v", err)
	}
	t.Logf("bad password: %v", err)
	// amqps is registered; nothing listens on 5671 here.
	if !strings.Contains(strings.Join(transport.Schemes(), ","), "amqps") {
		t.Fatal(transport.Schemes())
	}
	if _, err := transport.Open(ctx, "amqps://guest:sekrit@127.0.0.1:1/?cacertfile=/nonexistent&connection_timeout=500"); err == nil || strings.Contains(err.Error(), "sekrit") {
		t.Fatalf("amqps: %v", err)
	} else {
		t.Logf("amqps to a closed port: %v", err)
	}
	// Large message within the default limit.
	tr2 := openT(t, "", "")
	big := &transport.Message{Body: bytes.Repeat([]byte("x"), 256<<10)}
	if err := tr2.Send(ctx, q, []*transport.Message{big}); err != nil {
		t.Fatal(err)
	}
}

func TestCloseSemantics(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 30*time.Second)
	s, err := tr.Subscribe(ctx, transport.Topic(p+"t"), "g", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := tr.OpenInbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := s.Receive(context.Background(), 1); errc <- err }()
	_ = tr.Close()
	_ = tr.Close()
	if err := <-errc; !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("blocked receive: %v", err)
	}
	if _, err := ib.Receive(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatal(err)
	}
	if err := tr.Send(ctx, transport.Topic("x"), []*transport.Message{{}}); !errors.Is(err, transport.ErrClosed) {
		t.Fatal(err)
	}
	if _, err := tr.Subscribe(ctx, transport.Topic("x"), "g", transport.SubscribeOptions{}); !errors.Is(err, transport.ErrClosed) {
		t.Fatal(err)
	}
	if _, err := tr.OpenInbox(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatal(err)
	}
	if err := tr.Declare(ctx, transport.Queue("x")); !errors.Is(err, transport.ErrClosed) {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	tr2 := openT(t, p, "")
	s2, err := tr2.Subscribe(ctx, transport.Topic(p+"t"), "g", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Receive(ctx2, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive timeout: %v", err)
	}
}

func TestConcurrentSendsAndOrder(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 60*time.Second)
	q := transport.Queue(p + "q")
	s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const senders, per = 8, 100
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i += 10 {
				var batch []*transport.Message
				for j := i; j < i+10; j++ {
					batch = append(batch, &transport.Message{ID: fmt.Sprintf("%d-%d", g, j), Key: fmt.Sprint(g)})
				}
				if err := tr.Send(ctx, q, batch); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := recvN(t, ctx, s, senders*per, true)
	next := map[string]int{}
	for _, m := range got {
		var g, j int
		fmt.Sscanf(m.ID, "%d-%d", &g, &j)
		if next[m.Key] != j {
			t.Fatalf("key %s: got %d, want %d", m.Key, j, next[m.Key])
		}
		next[m.Key]++
	}
}
