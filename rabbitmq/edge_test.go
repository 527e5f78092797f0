package rabbitmq

import (
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
		"plain-queue":                                        false,
		DirectReplyTo + ".garbage":                           true,
		DirectReplyTo + ".g2dkbmc0YWdAbG9jYWxob3N0AAAA.xxxx": true,
		DirectReplyTo + ".bm90LWVybGFuZw==.key":              false, // unknown format: published
	} {
		if got := replyAddrPoison(addr); got != want {
			t.Errorf("%q: got %v, want %v", addr, got, want)
		}
	}
}
