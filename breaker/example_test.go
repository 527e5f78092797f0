package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-go/switchboard/breaker"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// A broker that keeps failing opens the send breaker: further sends fail
// fast with ErrOpen, without reaching the broker.
func ExampleSend() {
	ctx := context.Background()
	sendBreaker, err := breaker.Send(breaker.WithFailures(2), breaker.WithOpenTimeout(30*time.Second),
		breaker.WithOnStateChange(func(name string, from, to breaker.State) {
			fmt.Printf("breaker %s: %s -> %s\n", name, from, to)
		}))
	if err != nil {
		panic(err)
	}
	// Stands for a broker that is down.
	down := func(next messaging.SendFunc) messaging.SendFunc {
		return func(context.Context, transport.Address, []*transport.Message) error {
			return fmt.Errorf("%w: connection refused", messaging.ErrUnavailable)
		}
	}
	c, err := messaging.Open(ctx, "mem://", messaging.WithSendMiddleware(sendBreaker, down))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	for range 3 {
		err := c.Publish(ctx, "orders", &messaging.Message{Body: []byte("x")})
		fmt.Println("fail fast:", errors.Is(err, breaker.ErrOpen))
	}
	// Output:
	// fail fast: false
	// breaker send: closed -> open
	// fail fast: false
	// fail fast: true
}

// A handler breaker pauses consumption while the handler keeps failing:
// install it outside (before) dedup.Middleware.
func ExampleHandler() {
	ctx := context.Background()
	handlerBreaker, err := breaker.Handler(breaker.WithName("billing"), breaker.WithFailures(5),
		breaker.WithOpenTimeout(10*time.Second), breaker.WithHalfOpenProbes(1))
	if err != nil {
		panic(err)
	}
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	done := make(chan string)
	if _, err := c.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m *messaging.Message) error {
		done <- string(m.Body)
		return nil
	}, messaging.WithMiddleware(handlerBreaker)); err != nil {
		panic(err)
	}
	c.Publish(ctx, "orders", &messaging.Message{Body: []byte("order 1")})
	fmt.Println(<-done)
	// Output: order 1
}
