package rabbitmq

import (
	"context"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/messaging"
)

// TestRawResponder answers a Switchboard Request with a responder written
// on amqp091-go alone, as README.md's "Talking to services not written
// with Switchboard" says: declare the request queue (the service name +
// ".rpc", quorum), consume it, and publish the reply to the default
// exchange with the request's reply-to as routing key and its
// correlation-id; the deadline is the sb-deadline application property.
func TestRawResponder(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 60*time.Second)
	c, err := messaging.New(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	svc := p + "prices"

	conn, err := amqp.Dial(brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	queue := tr.QueueName(svc + ".rpc")
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadlines := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range deliveries {
			dl, _ := d.Headers["sb-deadline"].(string)
			deadlines <- dl
			err := ch.PublishWithContext(ctx, "", d.ReplyTo, false, false, amqp.Publishing{
				CorrelationId: d.CorrelationId, ContentType: "text/plain", Body: append([]byte("price of "), d.Body...)})
			if err != nil {
				t.Errorf("reply: %v", err)
			}
			d.Ack(false)
		}
	}()
	defer func() { ch.Close(); <-done }()

	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	reply, err := c.Request(rctx, svc, &messaging.Message{Body: []byte("book")})
	if err != nil {
		t.Fatalf("Request answered by a raw amqp091 responder: %v", err)
	}
	if string(reply.Body) != "price of book" || reply.ContentType != "text/plain" {
		t.Errorf("reply %+v", reply)
	}
	ms, err := strconv.ParseInt(<-deadlines, 10, 64)
	if dl, _ := rctx.Deadline(); err != nil || time.UnixMilli(ms).Sub(dl).Abs() > time.Second {
		t.Errorf("sb-deadline %v (%v), want the request's deadline %v", time.UnixMilli(ms), err, dl)
	}
}
