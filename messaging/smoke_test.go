package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

func TestSmokeAllPatterns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://", messaging.WithSubscribeDefaults(messaging.WithRetry(messaging.RetryPolicy{
		MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Multiplier: 1})))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	got := make(chan *messaging.Message, 10)
	if _, err := c.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m *messaging.Message) error {
		got <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "orders", &messaging.Message{Body: []byte("o1"), Headers: map[string]string{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	if m := <-got; string(m.Body) != "o1" || m.Header("a") != "b" || m.Attempt != 1 {
		t.Fatalf("got %+v", m)
	}
	// notification before listener
	if err := c.Notify(ctx, "alice", &messaging.Message{Body: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Listen(ctx, "alice", func(ctx context.Context, m *messaging.Message) error { got <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	if m := <-got; string(m.Body) != "hi" {
		t.Fatalf("got %q", m.Body)
	}
	// request/reply
	if _, err := c.Request(ctx, "echo", &messaging.Message{}); !errors.Is(err, messaging.ErrNoResponders) {
		t.Fatalf("want ErrNoResponders, got %v", err)
	}
	if _, err := c.Serve(ctx, "echo", func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		if string(m.Body) == "fail" {
			return nil, messaging.WithCode(errors.New("boom"), "E1")
		}
		return &messaging.Message{Body: append([]byte("re:"), m.Body...)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Request(ctx, "echo", &messaging.Message{Body: []byte("x")})
	if err != nil || string(r.Body) != "re:x" {
		t.Fatalf("reply %v %v", r, err)
	}
	_, err = c.Request(ctx, "echo", &messaging.Message{Body: []byte("fail")})
	var re *messaging.RemoteError
	if !errors.As(err, &re) || re.Code != "E1" {
		t.Fatalf("want remote error, got %v", err)
	}
	f, err := c.RequestAsync(ctx, "echo", &messaging.Message{Body: []byte("y")})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := f.Wait(ctx); err != nil || string(r.Body) != "re:y" {
		t.Fatalf("async %v %v", r, err)
	}
	// scatter-gather
	for _, g := range []string{"a", "b", "c"} {
		if _, err := c.Respond(ctx, "quotes", g, func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
			return &messaging.Message{Body: []byte(g)}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := c.Gather(ctx, "quotes", &messaging.Message{}, messaging.WantReplies(3))
	if err != nil || res.Count() != 3 {
		t.Fatalf("gather %v %v", res, err)
	}
	// dead letter
	dl := make(chan *messaging.Message, 1)
	if _, err := c.Listen(ctx, messaging.DeadLetterQueue("pay", "g"), func(ctx context.Context, m *messaging.Message) error { dl <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "pay", "g", func(ctx context.Context, m *messaging.Message) error { return errors.New("nope") }); err != nil {
		t.Fatal(err)
	}
	c.Publish(ctx, "pay", &messaging.Message{Body: []byte("p")})
	env, err := messaging.ParseDeadLetter(<-dl)
	if err != nil || env.LastAttempt != 3 || env.LastError != "nope" || string(env.Original.Body) != "p" {
		t.Fatalf("dlq %+v %v", env, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "orders", &messaging.Message{}); !errors.Is(err, messaging.ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
}
