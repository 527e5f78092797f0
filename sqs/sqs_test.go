package sqs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/switchboard-go/switchboard/transport"
)

func msg(i int, key string) *transport.Message {
	return &transport.Message{
		ID:            fmt.Sprintf("id-%d", i),
		Key:           key,
		Body:          []byte(fmt.Sprintf("body %d", i)),
		Headers:       map[string]string{"n": fmt.Sprint(i), "sb-attempt": "1"},
		ContentType:   "text/plain",
		Type:          "test.event",
		Version:       "2",
		Time:          time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC),
		CorrelationID: "corr",
		ReplyTo:       "",
	}
}

// recvN receives n messages (acking them when ack) within a deadline.
func recvN(t *testing.T, s transport.Subscription, n int, ack bool) []*transport.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []*transport.Message
	for len(got) < n {
		ms, err := s.Receive(ctx, n-len(got))
		if err != nil {
			t.Fatalf("receive after %d of %d: %v", len(got), n, err)
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
		got = append(got, ms...)
	}
	return got
}

// expectNone checks that nothing arrives within d.
func expectNone(t *testing.T, s transport.Subscription, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	ms, err := s.Receive(ctx, 10)
	if err == nil {
		t.Fatalf("unexpected message %q", ms[0].ID)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive: %v", err)
	}
}

func sameMessage(t *testing.T, want, got *transport.Message) {
	t.Helper()
	if got.ID != want.ID || got.Key != want.Key || !bytes.Equal(got.Body, want.Body) ||
		got.ContentType != want.ContentType || got.Type != want.Type || got.Version != want.Version ||
		!got.Time.Equal(want.Time) || got.CorrelationID != want.CorrelationID || got.ReplyTo != want.ReplyTo ||
		!maps.Equal(got.Headers, want.Headers) {
		t.Fatalf("message differs:\nwant %+v\n got %+v", want, got)
	}
}

func TestQueueSendReceiveAck(t *testing.T) {
	tr := open(t, "")
	p := uniq(t)
	ctx := context.Background()
	q := transport.Queue(p + "work.rpc")
	if err := tr.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	var msgs []*transport.Message
	for i := range 25 {
		msgs = append(msgs, msg(i, ""))
	}
	if err := tr.Send(ctx, q, msgs); err != nil {
		t.Fatal(err)
	}
	s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := recvN(t, s, 25, true)
	for i, m := range got {
		sameMessage(t, msgs[i], m)
		if m.DeliveryCount != 1 {
			t.Fatalf("DeliveryCount %d", m.DeliveryCount)
		}
		var native sqstypes.Message
		if !m.AsFunc(&native) || native.ReceiptHandle == nil {
			t.Fatal("AsFunc")
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	expectNone(t, s2, 1500*time.Millisecond)
}

func TestSendUndeclaredQueue(t *testing.T) {
	tr := open(t, "")
	p := uniq(t)
	start := time.Now()
	err := tr.Send(context.Background(), transport.Queue(p+"nobody"), []*transport.Message{msg(1, "")})
	if !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestTopicGroups(t *testing.T) {
	tr := open(t, "fifo=false") // standard mode: one receiver keeps the send order across keys
	p := uniq(t)
	ctx := context.Background()
	topic := transport.Topic(p + "orders.created")
	// Published before any group: reaches none.
	if err := tr.Send(ctx, topic, []*transport.Message{msg(0, "k")}); err != nil {
		t.Fatal(err)
	}
	a, err := tr.Subscribe(ctx, topic, "a", transport.SubscribeOptions{MaxInFlight: 5})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.Subscribe(ctx, topic, "b.x", transport.SubscribeOptions{MaxInFlight: 5})
	if err != nil {
		t.Fatal(err)
	}
	want := []*transport.Message{msg(1, "k"), msg(2, "k"), msg(3, "")}
	if err := tr.Send(ctx, topic, want); err != nil {
		t.Fatal(err)
	}
	for _, s := range []transport.Subscription{a, b} {
		got := recvN(t, s, 3, true)
		for i := range got {
			sameMessage(t, want[i], got[i])
		}
	}
	// Durable group: close, publish, subscribe again.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(ctx, topic, []*transport.Message{msg(4, "")}); err != nil {
		t.Fatal(err)
	}
	b2, err := tr.Subscribe(ctx, topic, "b.x", transport.SubscribeOptions{MaxInFlight: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if got := recvN(t, b2, 1, true); got[0].ID != "id-4" {
		t.Fatalf("got %s", got[0].ID)
	}
	if got := recvN(t, a, 1, true); got[0].ID != "id-4" {
		t.Fatalf("got %s", got[0].ID)
	}
	expectNone(t, a, 1500*time.Millisecond)
}

func TestNackAndCloseRedeliver(t *testing.T) {
	tr := open(t, "")
	p := uniq(t)
	ctx := context.Background()
	q := transport.Queue(p + "q")
	s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(ctx, q, []*transport.Message{msg(1, "")}); err != nil {
		t.Fatal(err)
	}
	m := recvN(t, s, 1, false)[0]
	if err := s.Nack(ctx, []any{m.AckID}); err != nil {
		t.Fatal(err)
	}
	m = recvN(t, s, 1, false)[0]
	if m.DeliveryCount != 2 {
		t.Fatalf("DeliveryCount %d after nack", m.DeliveryCount)
	}
	// Close without ack: released to the next consumer.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Receive(ctx, 1); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
	tr2 := open(t, "")
	s2, err := tr2.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	m = recvN(t, s2, 1, true)[0]
	if m.ID != "id-1" || m.DeliveryCount != 3 {
		t.Fatalf("got %s count %d", m.ID, m.DeliveryCount)
	}
}

func TestVisibilityExtended(t *testing.T) {
	tr := open(t, "visibility=2s")
	p := uniq(t)
	ctx := context.Background()
	q := transport.Queue(p + "slow")
	s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := tr.Send(ctx, q, []*transport.Message{msg(1, "")}); err != nil {
		t.Fatal(err)
	}
	m := recvN(t, s, 1, false)[0]
	// Held for 3 visibility timeouts: another consumer must not get it.
	other := open(t, "visibility=2s")
	s2, err := other.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	expectNone(t, s2, 6*time.Second)
	if err := s.Ack(ctx, []any{m.AckID}); err != nil {
		t.Fatal(err)
	}
}

func TestInbox(t *testing.T) {
	a := open(t, "")
	b := open(t, "")
	ctx := context.Background()
	ib, err := a.OpenInbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := msg(7, "")
	want.CorrelationID = "c-7"
	if err := b.Send(ctx, transport.Reply(ib.Address()), []*transport.Message{want}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got, err := ib.Receive(rctx)
	if err != nil {
		t.Fatal(err)
	}
	sameMessage(t, want, got[0])
	if err := ib.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ib.Close(); err != nil {
		t.Fatal(err)
	}
	// A reply to a gone inbox is dropped without error.
	if err := b.Send(ctx, transport.Reply(ib.Address()), []*transport.Message{want}); err != nil {
		t.Fatalf("send to closed inbox: %v", err)
	}
	if _, err := ib.Receive(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("receive after close: %v", err)
	}
}

func TestBodiesAndFields(t *testing.T) {
	tr := open(t, "fifo=false") // standard mode: one receiver keeps the send order across keys
	p := uniq(t)
	ctx := context.Background()
	topic := transport.Topic(p + "bodies")
	s, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bodies := [][]byte{nil, {}, {0, 1, 2, 0xff, 0xfe}, []byte("emoji 😀 and é"), []byte("ctrl \x01"), []byte("{\"json\":true}\n"), {0xef, 0xbf, 0xbf}}
	var want []*transport.Message
	for i, b := range bodies {
		m := msg(i, "")
		m.Body = b
		m.Type = "type 😀 " + fmt.Sprint(i)
		m.Headers = map[string]string{"emoji": "😀", "ctl": "a\x00b", "": "empty-name", "bad-utf8": "\xff\xfe", "quote": `"\`}
		if i%2 == 0 {
			delete(m.Headers, "bad-utf8")
		}
		want = append(want, m)
	}
	// Many headers: more than SQS's 10 attributes.
	many := msg(100, "key 😀")
	many.Headers = map[string]string{}
	for i := range 40 {
		many.Headers[fmt.Sprintf("h%02d", i)] = strings.Repeat("v", i)
	}
	want = append(want, many)
	if err := tr.Send(ctx, topic, want); err != nil {
		t.Fatal(err)
	}
	got := recvN(t, s, len(want), true)
	for i := range want {
		// Headers that could not be published again (an empty name,
		// values not valid UTF-8) arrive escaped (SEMANTICS.md, R85).
		esc := make(map[string]string, len(want[i].Headers))
		for k, v := range want[i].Headers {
			k, v = transport.EscapeHeader(k, v)
			esc[k] = v
		}
		w := *want[i]
		w.Headers = esc
		sameMessage(t, &w, got[i])
	}
}

func TestSizeLimits(t *testing.T) {
	tr := open(t, "")
	p := uniq(t)
	ctx := context.Background()
	limit := tr.Capabilities().MaxMessageSize
	topic := transport.Topic(p + "big")
	q := transport.Queue(p + "bigq")
	if err := tr.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	s, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Worst cases at exactly the limit: a binary body (base64 on the
	// wire), and headers of non-ASCII characters.
	bin := &transport.Message{ID: "bin"}
	bin.Body = bytes.Repeat([]byte{0xff}, limit-bin.Size())
	hdr := &transport.Message{ID: "hdr", Body: []byte("x"), Headers: map[string]string{"h": ""}}
	hdr.Headers["h"] = strings.Repeat("é", (limit-hdr.Size())/2)
	text := &transport.Message{ID: "text"}
	text.Body = bytes.Repeat([]byte("a"), limit-text.Size())
	for _, m := range []*transport.Message{bin, hdr, text} {
		if m.Size() > limit || m.Size() < limit-1 {
			t.Fatalf("size %d, limit %d", m.Size(), limit)
		}
		for _, to := range []transport.Address{topic, q} {
			if err := tr.Send(ctx, to, []*transport.Message{m}); err != nil {
				t.Fatalf("send %s of %d bytes to %s: %v", m.ID, m.Size(), to, err)
			}
		}
	}
	got := recvN(t, s, 3, true)
	for i, m := range []*transport.Message{bin, hdr, text} {
		if !bytes.Equal(got[i].Body, m.Body) || !maps.Equal(got[i].Headers, m.Headers) {
			t.Fatalf("%s differs", m.ID)
		}
	}
	big := &transport.Message{ID: "x", Body: make([]byte, limit)}
	for _, to := range []transport.Address{topic, q, transport.Queue(p + "missing")} {
		if err := tr.Send(ctx, to, []*transport.Message{big}); !errors.Is(err, transport.ErrMessageTooLarge) {
			t.Fatalf("send too large to %s: %v", to, err)
		}
	}
}

func TestClosed(t *testing.T) {
	tr := openURL(t, needEndpoint(t), "")
	p := uniq(t)
	ctx := context.Background()
	s, err := tr.Subscribe(ctx, transport.Queue(p+"c"), "", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := tr.OpenInbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	checks := map[string]error{
		"send":    tr.Send(ctx, transport.Queue(p+"c"), []*transport.Message{msg(1, "")}),
		"declare": tr.Declare(ctx, transport.Queue(p+"c")),
	}
	_, checks["subscribe"] = tr.Subscribe(ctx, transport.Queue(p+"c"), "", transport.SubscribeOptions{MaxInFlight: 1})
	_, checks["inbox"] = tr.OpenInbox(ctx)
	_, checks["receive"] = s.Receive(ctx, 1)
	_, checks["inbox receive"] = ib.Receive(ctx)
	checks["ack"] = s.Ack(ctx, []any{"x"})
	for what, err := range checks {
		if !errors.Is(err, transport.ErrClosed) {
			t.Errorf("%s after close: %v", what, err)
		}
	}
}

func TestFIFOOrder(t *testing.T) {
	tr := open(t, "fifo=true")
	if !tr.Capabilities().OrderedByKey {
		t.Fatal("fifo=true must report OrderedByKey")
	}
	p := uniq(t)
	ctx := context.Background()
	topic := transport.Topic(p + "ordered")
	s, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var batch []*transport.Message
	for i := range 60 {
		batch = append(batch, msg(i, []string{"a", "b", ""}[i%3]))
	}
	if err := tr.Send(ctx, topic, batch); err != nil {
		t.Fatal(err)
	}
	got := recvN(t, s, len(batch), true)
	last := map[string]int{}
	for _, m := range got {
		var n int
		fmt.Sscanf(m.ID, "id-%d", &n)
		if prev, ok := last[m.Key]; ok && n < prev {
			t.Fatalf("key %q: %d after %d", m.Key, n, prev)
		}
		last[m.Key] = n
	}
	// Sending the same IDs again in another Send delivers them again:
	// deduplication IDs are per Send call (the SDK's retries of one call
	// are deduplicated by the service; the application's own duplicates
	// are package dedup's job).
	q := transport.Queue(p + "fq")
	if err := tr.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(ctx, q, batch[:3]); err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(ctx, q, batch[:3]); err != nil {
		t.Fatal(err)
	}
	sq, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	recvN(t, sq, 6, true)
	expectNone(t, sq, 1500*time.Millisecond)
}

func TestURLOptions(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{
		"sqs://?region=us-east-1&bogus=1",
		"sqs://?region=us-east-1&fifo=maybe",
		"sqs://?region=us-east-1&wait=30s",
		"sqs://?region=us-east-1&endpoint=localhost:4566",
		"sqs://127.0.0.1:4566?region=us-east-1&endpoint=http://x:1",
		"sqs://user:secretpw@?region=us-east-1",
	} {
		tr, err := transport.Open(ctx, u)
		if err == nil {
			tr.Close()
			t.Fatalf("%s: no error", u)
		}
		if !errors.Is(err, transport.ErrInvalid) || strings.Contains(err.Error(), "secretpw") {
			t.Fatalf("%s: %v", u, err)
		}
		if strings.Contains(u, "bogus") && !strings.Contains(err.Error(), "endpoint") {
			t.Fatalf("error does not name the accepted parameters: %v", err)
		}
	}
	tr, err := transport.Open(ctx, "sqs://127.0.0.1:1?region=eu-west-1&fifo=true&visibility=45&wait=0&receivers=2")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	c := tr.Capabilities()
	if c.Name != "sqs" || !c.OrderedByKey || !c.DeliveryCount || c.MaxMessageSize <= 0 {
		t.Fatalf("%+v", c)
	}
	// Nothing listens on port 1: a typed error, quickly.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = tr.Send(sctx, transport.Topic("t"), []*transport.Message{msg(1, "")})
	if !errors.Is(err, transport.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
}

// TestConcurrentAcks acks one message per call from many goroutines (the
// adapter coalesces them into DeleteMessageBatch calls).
func TestConcurrentAcks(t *testing.T) {
	tr := open(t, "fifo=false") // standard mode: one receiver keeps the send order across keys
	p := uniq(t)
	ctx := context.Background()
	q := transport.Queue(p + "acks")
	s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 50})
	if err != nil {
		t.Fatal(err)
	}
	var batch []*transport.Message
	for i := range 50 {
		batch = append(batch, msg(i, ""))
	}
	if err := tr.Send(ctx, q, batch); err != nil {
		t.Fatal(err)
	}
	got := recvN(t, s, 50, false)
	errs := make(chan error, len(got))
	for _, m := range got {
		go func() { errs <- s.Ack(ctx, []any{m.AckID}) }()
	}
	for range got {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	expectNone(t, s2, 1500*time.Millisecond)
}
