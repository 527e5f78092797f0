package sqs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// TestMessagingOverSQS runs package messaging's patterns over this
// adapter: publish/subscribe, notify/listen, request/reply through reply
// inboxes, scatter-gather, and ErrNoResponders.
func TestMessagingOverSQS(t *testing.T) {
	p := uniq(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	newClient := func() *messaging.Client {
		c, err := messaging.New(open(t, ""))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := newClient(), newClient()

	got := make(chan string, 10)
	if _, err := b.Subscribe(ctx, p+"orders", "billing", func(ctx context.Context, m *messaging.Message) error {
		got <- "sub:" + string(m.Body) + ":" + m.Header("region")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, p+"orders", &messaging.Message{Key: "c-1", Body: []byte("o1"), Headers: map[string]string{"region": "eu"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Listen(ctx, p+"mailer", func(ctx context.Context, m *messaging.Message) error {
		got <- "listen:" + string(m.Body)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.Notify(ctx, p+"mailer", &messaging.Message{Body: []byte("n2")}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"sub:o1:eu": true, "listen:n2": true}
	for len(want) > 0 {
		select {
		case s := <-got:
			delete(want, s)
		case <-ctx.Done():
			t.Fatalf("missing %v", want)
		}
	}

	if _, err := b.Serve(ctx, p+"prices", func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: append([]byte("price of "), req.Body...)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	reply, err := a.Request(ctx, p+"prices", &messaging.Message{Body: []byte("book")})
	if err != nil || string(reply.Body) != "price of book" {
		t.Fatalf("request: %v %v", reply, err)
	}
	if _, err := a.Request(ctx, p+"nobody", &messaging.Message{Body: []byte("x")}); !errors.Is(err, messaging.ErrNoResponders) {
		t.Fatalf("request to nobody: %v", err)
	}
}
