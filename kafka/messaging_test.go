package kafka_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// TestMessaging runs package messaging's patterns over the adapter:
// request/reply, no responders, scatter-gather and pub/sub groups.
func TestMessaging(t *testing.T) {
	brokers := testBrokers(t)
	ctx := ctxT(t, 90*time.Second)
	open := func() *messaging.Client {
		c, err := messaging.Open(ctx, testURL(brokers))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	server, client := open(), open()
	p := unique("msg")

	// Request/reply.
	if _, err := server.Serve(ctx, p+"-echo", func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: append([]byte("echo:"), req.Body...)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := client.Request(ctx, p+"-echo", &messaging.Message{Body: []byte("hi")})
	if err != nil || string(rep.Body) != "echo:hi" {
		t.Fatalf("request: %v %v", rep, err)
	}
	start := time.Now()
	if _, err := client.Request(ctx, p+"-nobody", &messaging.Message{Body: []byte("hi")}); !errors.Is(err, messaging.ErrNoResponders) {
		t.Errorf("request to nobody: %v, want ErrNoResponders", err)
	}
	t.Logf("ErrNoResponders after %v", time.Since(start))

	// Scatter-gather.
	for _, name := range []string{"a", "b", "c"} {
		if _, err := server.Respond(ctx, p+"-quotes", name, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
			return &messaging.Message{Body: []byte(name)}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := client.Gather(ctx, p+"-quotes", &messaging.Message{Body: []byte("?")}, messaging.WantReplies(3), messaging.GatherTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range g.Replies {
		names = append(names, string(r.Body))
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "a,b,c" {
		t.Errorf("gathered %v", names)
	}

	// Pub/sub: two groups each get the event.
	got := make(chan string, 4)
	for _, group := range []string{"billing", "analytics"} {
		if _, err := server.Subscribe(ctx, p+"-orders", group, func(ctx context.Context, m *messaging.Message) error {
			got <- group + ":" + string(m.Body)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.Publish(ctx, p+"-orders", &messaging.Message{Body: []byte("o-1"), Key: "alice"}); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for len(seen) < 2 {
		select {
		case s := <-got:
			seen = append(seen, s)
		case <-ctx.Done():
			t.Fatalf("pub/sub: saw only %v", seen)
		}
	}
	sort.Strings(seen)
	if strings.Join(seen, ",") != "analytics:o-1,billing:o-1" {
		t.Errorf("pub/sub saw %v", seen)
	}
}
