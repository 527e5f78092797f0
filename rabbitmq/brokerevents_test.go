package rabbitmq

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/rabbitmq/rabbitmqtest"
	"github.com/switchboard-go/switchboard/transport"
)

// TestConsumerCancelledByBroker is issue 11's input 5: the broker cancels
// a consumer (here, its queue is deleted by another connection): amqp091-go
// closes the delivery channel but not the AMQP channel. The subscription
// must notice, declare the queue again and consume from it, instead of
// waiting forever.
func TestConsumerCancelledByBroker(t *testing.T) {
	u := brokerURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := uniq(t)
	tr, err := Open(ctx, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	defer rabbitmqtest.DeleteDeclared(context.Background(), u, p)
	topic, group := p+"t", "g"
	sub, err := tr.Subscribe(ctx, transport.Topic(topic), group, transport.SubscribeOptions{MaxInFlight: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	send := func(body string) {
		t.Helper()
		if err := tr.Send(ctx, transport.Topic(topic), []*transport.Message{{ID: body, Body: []byte(body)}}); err != nil {
			t.Fatalf("send %s: %v", body, err)
		}
	}
	send("before")
	got, err := sub.Receive(ctx, 1)
	if err != nil || len(got) != 1 || string(got[0].Body) != "before" {
		t.Fatalf("Receive = %v, %v; want the message sent before the cancel", got, err)
	}
	if err := sub.Ack(ctx, []any{got[0].AckID}); err != nil {
		t.Fatal(err)
	}

	// Another connection deletes the group's queue: the broker cancels
	// the subscription's consumer with basic.cancel.
	conn, err := amqp.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range tr.PartitionQueueNames(topic, group) {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			t.Fatalf("QueueDelete(%s): %v", q, err)
		}
	}

	// Messages published while the queue is missing are unroutable and
	// lost; keep publishing until the re-declared queue receives one.
	received := make(chan []*transport.Message, 1)
	rerr := make(chan error, 1)
	go func() {
		msgs, err := sub.Receive(ctx, 10)
		if err != nil {
			rerr <- err
			return
		}
		received <- msgs
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		send("after")
		select {
		case msgs := <-received:
			if string(msgs[0].Body) != "after" {
				t.Fatalf("received %q after the cancel, want %q", msgs[0].Body, "after")
			}
			return
		case err := <-rerr:
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatal("the subscription never consumed again after the broker cancelled its consumer")
			}
			t.Fatalf("Receive after the cancel: %v", err)
		case <-tick.C:
		}
	}
}
