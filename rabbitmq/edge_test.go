package rabbitmq

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

func TestReplyToUnknownInboxes(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 20*time.Second)
	for _, addr := range []string{"no-such-inbox", DirectReplyTo + ".garbage", DirectReplyTo + ".g2dkbmc0YWdAbG9jYWxob3N0AAAA.xxxx"} {
		if err := tr.Send(ctx, transport.Reply(addr), []*transport.Message{{ID: "r"}}); err != nil {
			t.Fatalf("reply to %q: %v", addr, err)
		}
	}
	// The publisher still works.
	q := transport.Queue(p + "q")
	if err := tr.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(ctx, q, []*transport.Message{{ID: "ok"}}); err != nil {
		t.Fatal(err)
	}
}

func TestReplyAddrPoison(t *testing.T) {
	for addr, want := range map[string]bool{
		"plain-queue":              false,
		DirectReplyTo + ".garbage": true,
		DirectReplyTo + ".g2dkbmc0YWdAbG9jYWxob3N0AAAA.xxxx": true,
		DirectReplyTo + ".bm90LWVybGFuZw==.key":              false, // unknown format: published
	} {
		if got := replyAddrPoison(addr); got != want {
			t.Errorf("%q: got %v, want %v", addr, got, want)
		}
	}
}

func TestLongHeaderNamesAndReservedNames(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 20*time.Second)
	long := strings.Repeat("h", 300)
	q := transport.Queue(p + "q")
	s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := &transport.Message{ID: strings.Repeat("i", 300), Headers: map[string]string{long: "v", longHeaders: "w", "a": "b"}}
	if err := tr.Send(ctx, q, []*transport.Message{in}); err != nil {
		t.Fatal(err)
	}
	got := recvN(t, ctx, s, 1, true)[0]
	// longHeaders is a reserved name (transport.ReservedHeaderName): sent
	// through the transport directly, it arrives escaped.
	if got.ID != in.ID || len(got.Headers) != 3 || got.Headers[long] != "v" || got.Headers["%"+longHeaders] != "w" || got.Headers["a"] != "b" {
		t.Fatalf("got %+v", got)
	}
	if fit("amq.x") != "~amq.x" {
		t.Fatal(fit("amq.x"))
	}
}
