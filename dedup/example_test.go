package dedup_test

import (
	"context"
	"fmt"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/messaging"
)

// Publishing one message ID twice: the handler runs once, and both
// deliveries are acknowledged.
func Example() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	mw, err := dedup.Middleware(dedup.NewMemoryStore(dedup.MemoryOptions{MaxEntries: 10_000}),
		dedup.WithNamespace("billing"))
	if err != nil {
		panic(err)
	}
	handled := make(chan string, 2)
	if _, err := c.Subscribe(ctx, "orders", "billing", func(ctx context.Context, m *messaging.Message) error {
		handled <- string(m.Body)
		return nil
	}, messaging.WithMiddleware(mw)); err != nil {
		panic(err)
	}
	// Same key: delivered in order, so the duplicate is seen after the
	// first is recorded as handled.
	for _, body := range []string{"charge order 7", "charge order 7 (duplicate)", "charge order 8"} {
		id := "order-7"
		if body == "charge order 8" {
			id = "order-8"
		}
		if err := c.Publish(ctx, "orders", &messaging.Message{ID: id, Key: "customer-1", Body: []byte(body)}); err != nil {
			panic(err)
		}
	}
	fmt.Println(<-handled)
	fmt.Println(<-handled)
	// Output:
	// charge order 7
	// charge order 8
}
