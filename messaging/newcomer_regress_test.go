package messaging_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// README "Batch handlers" shows SubscribeBatch with WithBatchSize(100); the
// default MaxInFlight is 64 and WithBatchSize above MaxInFlight is
// ErrInvalid (R132, R135), so the snippet raises WithMaxInFlight: as
// written, it subscribes.
func TestNewcomerREADMEBatchSnippetSubscribes(t *testing.T) {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.SubscribeBatch(ctx, "readings", "warehouse", func(ctx context.Context, msgs []*messaging.Message) error {
		return nil
	}, messaging.WithBatchSize(100), messaging.WithBatchWait(50*time.Millisecond), messaging.WithMaxInFlight(200))
	if err != nil {
		t.Fatalf("README's SubscribeBatch snippet fails: %v", err)
	}
}

// Default batch size is "10, capped at MaxInFlight" (CHANGELOG, WithBatchSize doc).
func TestNewcomerBatchDefaultSizeCappedAtMaxInFlight(t *testing.T) {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	maxLen, total := 0, 0
	done := make(chan struct{})
	_, err = c.SubscribeBatch(ctx, "capped", "g", func(ctx context.Context, msgs []*messaging.Message) error {
		mu.Lock()
		defer mu.Unlock()
		maxLen = max(maxLen, len(msgs))
		if total += len(msgs); total == 20 {
			close(done)
		}
		return nil
	}, messaging.WithMaxInFlight(4), messaging.WithKeyOrdering(false))
	if err != nil {
		t.Fatalf("default batch size with MaxInFlight 4: %v", err)
	}
	var msgs []*messaging.Message
	for range 20 {
		msgs = append(msgs, &messaging.Message{Body: []byte("x")})
	}
	if err := c.Publish(ctx, "capped", msgs...); err != nil {
		t.Fatal(err)
	}
	<-done
	if maxLen > 4 {
		t.Fatalf("batch of %d > MaxInFlight 4", maxLen)
	}
}

// R115: over MaxDelay fails with ErrInvalid naming 168h0m0s, nothing of the batch sent.
// R117: a past DeliverAt is received with a zero DeliverAt. R114: received
// DeliverAt equals the published due time.
func TestNewcomerDelayDocs(t *testing.T) {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan *messaging.Message, 10)
	if _, err := c.Subscribe(ctx, "rem", "g", func(ctx context.Context, m *messaging.Message) error {
		got <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err = c.Publish(ctx, "rem",
		&messaging.Message{Body: []byte("ok")},
		&messaging.Message{Body: []byte("far"), DeliverAt: time.Now().Add(messaging.MaxDelay + time.Minute)})
	if !errors.Is(err, messaging.ErrInvalid) {
		t.Fatalf("over MaxDelay: %v, want ErrInvalid", err)
	}
	t.Logf("over MaxDelay error: %v", err)
	due := time.Now().Add(300 * time.Millisecond)
	if err := c.Publish(ctx, "rem", &messaging.Message{Body: []byte("past"), DeliverAt: time.Now().Add(-time.Hour)},
		&messaging.Message{Body: []byte("later"), DeliverAt: due}); err != nil {
		t.Fatal(err)
	}
	m := <-got
	if string(m.Body) != "past" || !m.DeliverAt.IsZero() {
		t.Fatalf("first received %q DeliverAt %v; want past with zero DeliverAt (nothing of the refused batch)", m.Body, m.DeliverAt)
	}
	m = <-got
	if string(m.Body) != "later" || !m.DeliverAt.Equal(due) || time.Now().Before(due) {
		t.Fatalf("got %q DeliverAt %v (want %v), at %v", m.Body, m.DeliverAt, due, time.Now())
	}
	// Requests cannot be delayed.
	_, err = c.Request(ctx, "svc", &messaging.Message{DeliverAt: time.Now().Add(time.Minute)})
	if !errors.Is(err, messaging.ErrInvalid) {
		t.Fatalf("delayed request: %v, want ErrInvalid", err)
	}
}

// R115: RequestAsync, Gather and replies refuse a future DeliverAt with ErrInvalid.
func TestNewcomerDelayedRequestsAndReplies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	later := func() *messaging.Message {
		return &messaging.Message{Body: []byte("x"), DeliverAt: time.Now().Add(time.Minute)}
	}
	if _, err := c.RequestAsync(ctx, "svc", later()); !errors.Is(err, messaging.ErrInvalid) {
		t.Errorf("RequestAsync delayed: %v", err)
	}
	if _, err := c.Gather(ctx, "q", later(), messaging.WantReplies(1), messaging.GatherTimeout(time.Second)); !errors.Is(err, messaging.ErrInvalid) {
		t.Errorf("Gather delayed: %v", err)
	}
	if _, err := c.Serve(ctx, "svc", func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		return later(), nil
	}); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	defer rcancel()
	_, err = c.Request(rctx, "svc", &messaging.Message{Body: []byte("q")})
	t.Logf("delayed reply: requester gets %v", err)
	var re *messaging.RemoteError
	if !errors.As(err, &re) {
		t.Errorf("delayed reply: requester gets %v, want a *RemoteError saying the reply was refused", err)
	}
}

// R121 on inmem: one key's messages by due time, then publish order.
func TestNewcomerDelayKeyOrderInmem(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan string, 10)
	if _, err := c.ListenBatch(ctx, "rcpt", func(ctx context.Context, msgs []*messaging.Message) error {
		for _, m := range msgs {
			got <- string(m.Body)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := c.Notify(ctx, "rcpt",
		&messaging.Message{Key: "k", Body: []byte("A+600ms"), DeliverAt: now.Add(600 * time.Millisecond)},
		&messaging.Message{Key: "k", Body: []byte("B+200ms"), DeliverAt: now.Add(200 * time.Millisecond)},
		&messaging.Message{Key: "k", Body: []byte("C-now")},
		&messaging.Message{Key: "k", Body: []byte("D+200ms"), DeliverAt: now.Add(200 * time.Millisecond)},
	); err != nil {
		t.Fatal(err)
	}
	want := []string{"C-now", "B+200ms", "D+200ms", "A+600ms"}
	for i, w := range want {
		if g := <-got; g != w {
			t.Fatalf("message %d: %s, want %s (order %v)", i, g, w, want)
		}
	}
}

// Cosmetic: the MaxDelay error of a message without an ID reads
// "message : DeliverAt ..." (an empty name and a dangling colon).
func TestNewcomerDelayErrorTextNamesMessage(t *testing.T) {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Publish(ctx, "t", &messaging.Message{Body: []byte("x"), DeliverAt: time.Now().Add(8 * 24 * time.Hour)})
	if err == nil || strings.Contains(err.Error(), "message :") {
		t.Fatalf("error text: %v", err)
	}
}

// README: "as soon as WithBatchSize(n) messages are there (default 10), or
// when WithBatchWait(d) has passed since the batch's first message". With
// the defaults, 25 messages without keys published at once come in batches
// of 10, 10, 5 (key ordering applies to keyed messages only).
func TestNewcomerBatchUnkeyedDefaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sizes := make(chan int, 30)
	if _, err := c.SubscribeBatch(ctx, "unkeyed", "g", func(ctx context.Context, msgs []*messaging.Message) error {
		sizes <- len(msgs)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var msgs []*messaging.Message
	for range 25 {
		msgs = append(msgs, &messaging.Message{Body: []byte("x")})
	}
	if err := c.Publish(ctx, "unkeyed", msgs...); err != nil {
		t.Fatal(err)
	}
	var got []int
	for n := 0; n < 25; {
		s := <-sizes
		got = append(got, s)
		n += s
	}
	t.Logf("batch sizes: %v", got)
	if len(got) > 3 {
		t.Errorf("25 unkeyed messages came in %d batches %v, want 10, 10, 5", len(got), got)
	}
}

// R129: a nil error counts as a failure; a BatchError naming only messages
// not in the batch fails the whole batch. R135: bad options are ErrInvalid.
func TestNewcomerBatchErrorEdges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name string
		opts []messaging.SubscribeOption
		h    messaging.BatchHandler
	}{
		{"nil handler", nil, nil},
		{"negative size", []messaging.SubscribeOption{messaging.WithBatchSize(-1)}, func(context.Context, []*messaging.Message) error { return nil }},
		{"negative wait", []messaging.SubscribeOption{messaging.WithBatchWait(-time.Second)}, func(context.Context, []*messaging.Message) error { return nil }},
		{"nil option", []messaging.SubscribeOption{nil}, func(context.Context, []*messaging.Message) error { return nil }},
	} {
		if _, err := c.SubscribeBatch(ctx, "edges-bad", "g", tc.h, tc.opts...); !errors.Is(err, messaging.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	type call struct {
		body    string
		attempt int
	}
	calls := make(chan call, 20)
	stranger := &messaging.Message{Body: []byte("stranger")}
	if _, err := c.SubscribeBatch(ctx, "edges", "g", func(ctx context.Context, msgs []*messaging.Message) error {
		var be messaging.BatchError
		for _, m := range msgs {
			calls <- call{string(m.Body), m.Attempt}
			if m.Attempt == 1 && string(m.Body) == "nilerr" {
				be.Add(m, nil) // counts as a failure
			}
			if m.Attempt == 1 && string(m.Body) == "foreign" {
				be.Add(stranger, errors.New("x")) // names nothing of the batch: whole batch fails
			}
		}
		return be.Err()
	}, messaging.WithBatchSize(1), messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond})); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "edges", &messaging.Message{Key: "a", Body: []byte("nilerr")}, &messaging.Message{Key: "b", Body: []byte("foreign")}); err != nil {
		t.Fatal(err)
	}
	seen := map[string][]int{}
	for len(seen["nilerr"]) < 2 || len(seen["foreign"]) < 2 {
		select {
		case cl := <-calls:
			seen[cl.body] = append(seen[cl.body], cl.attempt)
		case <-ctx.Done():
			t.Fatalf("calls so far %v", seen)
		}
	}
	t.Logf("calls: %v", seen)
}

// R135: "Middleware (WithMiddleware) is not applied to batch handlers."
// A newcomer passing dedup or tracing middleware to SubscribeBatch gets no
// error and no middleware: this test records what happens.
func TestNewcomerBatchMiddlewareSilentlyIgnored(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var called atomic.Bool
	mw := func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error { called.Store(true); return next(ctx, m) }
	}
	done := make(chan struct{})
	_, err = c.SubscribeBatch(ctx, "mw", "g", func(ctx context.Context, msgs []*messaging.Message) error {
		close(done)
		return nil
	}, messaging.WithMiddleware(mw))
	if err != nil {
		t.Logf("SubscribeBatch with WithMiddleware: %v (refused: fine)", err)
		return
	}
	if err := c.Publish(ctx, "mw", &messaging.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	<-done
	if !called.Load() {
		t.Errorf("WithMiddleware passed to SubscribeBatch was accepted and silently not applied (documented in R135, but no error: a dedup.Middleware here deduplicates nothing)")
	}
}

// Message.ReceivedFrom's doc: topic (Subscribe, Respond), recipient
// (Listen), a dead-letter queue's name when listening on one, the
// service's name (Serve, not "<service>.rpc"), the name peeked at (Peek).
func TestNewcomerReceivedFromDoc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan string, 10)
	if _, err := c.Serve(ctx, "svc", func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		got <- m.ReceivedFrom
		return &messaging.Message{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Request(ctx, "svc", &messaging.Message{}); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "svc" {
		t.Errorf("Serve: ReceivedFrom %q, want svc", g)
	}
	if _, err := c.Respond(ctx, "quotes", "dhl", func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		got <- m.ReceivedFrom
		return &messaging.Message{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Gather(ctx, "quotes", &messaging.Message{}, messaging.WantReplies(1), messaging.GatherTimeout(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "quotes" {
		t.Errorf("Respond: ReceivedFrom %q, want quotes", g)
	}
	// A dead letter from a recipient, then listened on its dead-letter queue.
	if _, err := c.Listen(ctx, "mailer", func(ctx context.Context, m *messaging.Message) error {
		return messaging.Permanent(errors.New("bad"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Notify(ctx, "mailer", &messaging.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	dlq := messaging.DeadLetterQueue("mailer", "")
	dls := make(chan *messaging.Message, 1)
	if _, err := c.Listen(ctx, dlq, func(ctx context.Context, m *messaging.Message) error { dls <- m; return nil }); err != nil {
		t.Fatal(err)
	}
	m := <-dls
	if m.ReceivedFrom != dlq {
		t.Errorf("Listen on %s: ReceivedFrom %q", dlq, m.ReceivedFrom)
	}
	dl, err := messaging.ParseDeadLetter(m)
	if err != nil || dl.ReceivedFrom != "mailer" || dl.Group != "" || dl.LastAttempt != 1 {
		t.Errorf("dead letter %+v, %v", dl, err)
	}
}

// Client.Validate "checks m as Publish and Notify do before sending": a
// DeliverAt beyond MaxDelay fails Publish with ErrInvalid (R115).
func TestNewcomerValidateDeliverAt(t *testing.T) {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := &messaging.Message{Body: []byte("x"), DeliverAt: time.Now().Add(8 * 24 * time.Hour)}
	perr := c.Publish(ctx, "v", m)
	verr := c.Validate(m)
	if errors.Is(perr, messaging.ErrInvalid) && verr == nil {
		t.Errorf("Publish: %v; Validate of the same message: nil", perr)
	}
}
