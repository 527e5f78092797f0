package inmem_test

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
)

// Two members of one consumer group share its keys, but a key's messages
// go to one member at a time, in order (key affinity), and a member that
// the broker cancels (here: the group's queue deleted, as an operator
// would) sets itself up again.
func ExampleBroker_CancelConsumers() {
	ctx := context.Background()
	b, _ := inmem.NewBroker()
	c, _ := messaging.New(b.Transport())
	defer c.Close()
	got := make(chan string, 16)
	_, _ = c.Subscribe(ctx, "orders", "billing", func(_ context.Context, m *messaging.Message) error {
		got <- string(m.Body)
		return nil
	})
	_ = c.Publish(ctx, "orders", &messaging.Message{Key: "order-1", Body: []byte("created")})
	fmt.Println(<-got)

	_ = b.CancelConsumers("orders", "billing")
	// The subscription declares the group again when it notices; what is
	// published once it has is delivered, and what was
	// published before then is lost with the deleted queue: try again.
	for done := false; !done; {
		_ = c.Publish(ctx, "orders", &messaging.Message{Key: "order-1", Body: []byte("paid")})
		select {
		case body := <-got:
			fmt.Println(body)
			done = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Output:
	// created
	// paid
}
