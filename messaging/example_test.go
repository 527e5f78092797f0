package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// Publish/subscribe: every consumer group gets every message; consumers in
// one group share them.
func Example_publishSubscribe() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	got := make(chan string)
	_, err = c.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m *messaging.Message) error {
		got <- fmt.Sprintf("billing got %s (%s)", m.Body, m.Header("region"))
		return nil // acknowledged
	})
	if err != nil {
		panic(err)
	}
	err = c.Publish(ctx, "orders", &messaging.Message{
		Key:     "customer-42",
		Body:    []byte(`{"id":1}`),
		Headers: map[string]string{"region": "eu"},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	// Output: billing got {"id":1} (eu)
}

// Notifications: fire-and-forget to one recipient, held until it listens.
func Example_notify() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	// Sent before anyone listens: the message waits.
	if err := c.Notify(ctx, "mailer", &messaging.Message{Body: []byte("welcome alice")}); err != nil {
		panic(err)
	}
	got := make(chan string)
	if _, err := c.Listen(ctx, "mailer", func(ctx context.Context, m *messaging.Message) error {
		got <- string(m.Body)
		return nil
	}); err != nil {
		panic(err)
	}
	fmt.Println(<-got)
	// Output: welcome alice
}

// Request with synchronous response.
func Example_request() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	_, err = c.Serve(ctx, "prices", func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		if string(req.Body) == "unknown" {
			return nil, messaging.WithCode(errors.New("no such item"), "not_found")
		}
		return &messaging.Message{Body: []byte("9.99")}, nil
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := c.Request(ctx, "prices", &messaging.Message{Body: []byte("book")})
	fmt.Println(string(reply.Body), err)

	_, err = c.Request(ctx, "prices", &messaging.Message{Body: []byte("unknown")})
	var remote *messaging.RemoteError
	fmt.Println(errors.As(err, &remote), remote.Code)
	// Output:
	// 9.99 <nil>
	// true not_found
}

// Request with asynchronous response: a future, or a reply handler.
func Example_requestAsync() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	_, err = c.Serve(ctx, "stock", func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: append([]byte("in stock: "), req.Body...)}, nil
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()

	future, err := c.RequestAsync(ctx, "stock", &messaging.Message{Body: []byte("pen")})
	if err != nil {
		panic(err)
	}
	handled := make(chan string)
	_, err = c.RequestAsync(ctx, "stock", &messaging.Message{Body: []byte("ink")},
		messaging.OnReply(func(reply *messaging.Message, err error) { handled <- string(reply.Body) }))
	if err != nil {
		panic(err)
	}
	// ... do other work, then collect.
	reply, err := future.Wait(ctx)
	fmt.Println(string(reply.Body), err)
	fmt.Println(<-handled)
	// Output:
	// in stock: pen <nil>
	// in stock: ink
}

// Publish with asynchronous responses (scatter-gather).
func Example_gather() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	for _, carrier := range []string{"dhl", "ups", "fedex"} {
		_, err := c.Respond(ctx, "shipping-quotes", carrier, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
			return &messaging.Message{Body: []byte(carrier)}, nil
		})
		if err != nil {
			panic(err)
		}
	}
	got, err := c.Gather(ctx, "shipping-quotes", &messaging.Message{Body: []byte("1kg to Paris")},
		messaging.WantReplies(3), messaging.GatherTimeout(5*time.Second))
	var names []string
	for _, r := range got.Replies {
		names = append(names, string(r.Body))
	}
	sort.Strings(names)
	fmt.Println(got.Count(), names, err)
	// Output: 3 [dhl fedex ups] <nil>
}

// A handler error is retried with backoff; after MaxAttempts the message
// goes to the dead-letter queue with its failure envelope.
func Example_deadLetter() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	dead := make(chan *messaging.DeadLetter)
	_, err = c.Listen(ctx, messaging.DeadLetterQueue("payments", "ledger"), func(ctx context.Context, m *messaging.Message) error {
		dl, err := messaging.ParseDeadLetter(m)
		if err != nil {
			return messaging.Permanent(err)
		}
		dead <- dl
		return nil
	})
	if err != nil {
		panic(err)
	}
	_, err = c.Subscribe(ctx, "payments", "ledger", func(ctx context.Context, m *messaging.Message) error {
		return fmt.Errorf("ledger offline (attempt %d)", m.Attempt)
	}, messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, Multiplier: 2}))
	if err != nil {
		panic(err)
	}
	if err := c.Publish(ctx, "payments", &messaging.Message{Body: []byte("pay 10")}); err != nil {
		panic(err)
	}
	dl := <-dead
	fmt.Println(dl.ReceivedFrom, dl.Group, dl.LastAttempt, dl.LastError, string(dl.Original.Body))
	// Output: payments ledger 3 ledger offline (attempt 3) pay 10
}
