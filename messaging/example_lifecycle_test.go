package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// Each reply of a gather says which group sent it; a group counts once,
// however often its reply arrives.
func Example_gatherResponders() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	for _, carrier := range []string{"dhl", "ups"} {
		_, err := c.Respond(ctx, "parcel-quotes", carrier, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
			return &messaging.Message{Body: []byte("12.50")}, nil
		})
		if err != nil {
			panic(err)
		}
	}
	got, err := c.Gather(ctx, "parcel-quotes", &messaging.Message{Body: []byte("1kg to Paris")},
		messaging.WantReplies(2), messaging.GatherTimeout(5*time.Second))
	var from []string
	for _, r := range got.Replies {
		from = append(from, r.Responder+"="+string(r.Body))
	}
	sort.Strings(from)
	fmt.Println(from, err)
	// Output: [dhl=12.50 ups=12.50] <nil>
}

// A dead letter that would not fit the transport's size limit is shrunk
// to fit, and says what was cut.
func Example_deadLetterTruncated() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://?max_message_size=2000")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	dead := make(chan *messaging.DeadLetter)
	_, err = c.Listen(ctx, messaging.DeadLetterQueue("uploads", "scanner"), func(ctx context.Context, m *messaging.Message) error {
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
	_, err = c.Subscribe(ctx, "uploads", "scanner", func(ctx context.Context, m *messaging.Message) error {
		return messaging.Permanent(errors.New(strings.Repeat("virus found; ", 200))) // 2,600 bytes
	})
	if err != nil {
		panic(err)
	}
	if err := c.Publish(ctx, "uploads", &messaging.Message{Body: []byte(strings.Repeat("x", 1500))}); err != nil {
		panic(err)
	}
	dl := <-dead
	fmt.Println(dl.Truncated, len(dl.Original.Body) < 1500, len(dl.LastError))
	// Output: [error body] true 256
}
