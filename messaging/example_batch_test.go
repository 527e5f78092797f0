package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// Batch handlers: messages come in batches of up to WithBatchSize, handed
// over when full or when WithBatchWait has passed; a *BatchError retries
// only the messages it names, the others are acknowledged.
func Example_subscribeBatch() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()

	done := make(chan struct{})
	inserted := 0
	_, err = c.SubscribeBatch(ctx, "readings", "warehouse", func(ctx context.Context, msgs []*messaging.Message) error {
		var be messaging.BatchError
		var bodies []string
		for _, m := range msgs {
			if string(m.Body) == "r2" && m.Attempt == 1 {
				be.Add(m, errors.New("row locked")) // retried alone, Attempt 2
				continue
			}
			bodies = append(bodies, string(m.Body))
		}
		slices.Sort(bodies)
		fmt.Printf("inserted %v\n", bodies) // one bulk insert per batch
		if inserted += len(bodies); inserted == 4 {
			close(done)
		}
		return be.Err() // nil acknowledges the whole batch
	}, messaging.WithBatchSize(4), messaging.WithBatchWait(50*time.Millisecond))
	if err != nil {
		panic(err)
	}
	var msgs []*messaging.Message
	for _, b := range []string{"r1", "r2", "r3", "r4"} {
		msgs = append(msgs, &messaging.Message{Key: b, Body: []byte(b)})
	}
	if err := c.Publish(ctx, "readings", msgs...); err != nil {
		panic(err)
	}
	<-done
	// Output:
	// inserted [r1 r3 r4]
	// inserted [r2]
}
