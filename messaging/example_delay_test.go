package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// Delayed delivery: a message with DeliverAt in the future reaches no
// handler before then. Here the reminder is due 200 ms after it is
// published; in a service it would be hours or days (up to MaxDelay).
func ExampleMessage_deliverAt() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	type arrival struct {
		body    string
		onTime  bool
		dueTime time.Time
	}
	got := make(chan arrival, 1)
	if _, err := c.Subscribe(ctx, "reminders", "mailer", func(ctx context.Context, m *messaging.Message) error {
		got <- arrival{string(m.Body), !time.Now().Before(m.DeliverAt), m.DeliverAt}
		return nil
	}); err != nil {
		panic(err)
	}

	due := time.Now().Add(200 * time.Millisecond)
	err = c.Publish(ctx, "reminders", &messaging.Message{
		Key:       "user-42",
		Body:      []byte("finish your signup"),
		DeliverAt: due,
	})
	if err != nil {
		panic(err)
	}
	a := <-got
	fmt.Println(a.body, "| not before its due time:", a.onTime, "| DeliverAt kept:", a.dueTime.Equal(due))

	// More than MaxDelay ahead is refused, naming the maximum.
	err = c.Publish(ctx, "reminders", &messaging.Message{DeliverAt: time.Now().Add(8 * 24 * time.Hour)})
	fmt.Println(errors.Is(err, messaging.ErrInvalid), messaging.MaxDelay)
	// Output:
	// finish your signup | not before its due time: true | DeliverAt kept: true
	// true 168h0m0s
}
