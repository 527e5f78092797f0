package rabbitmq

import (
	"context"
	"maps"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/messaging"
)

// R85: received headers are escaped losslessly. An AMQP message with the
// application properties "ce-type" (reserved, not of the AMQP binding:
// escaped to "%ce-type") and "%ce-type" (whose name the escaped one
// takes: escaped too) arrives with both values, and can be published
// again.
func TestEscapeCollisionKeepsBothHeaders(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 60*time.Second)
	c, err := messaging.New(tr, messaging.WithSource("urn:test:collision"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := p + "coll"
	type result struct {
		m   *messaging.Message
		err error
	}
	got := make(chan result, 1)
	l, err := c.Listen(ctx, q, func(ctx context.Context, m *messaging.Message) error {
		got <- result{m, c.Notify(ctx, q+"-again", m)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := rawCEChannel(t)
	rawCEPublish(t, ctx, ch, "", tr.QueueName(q), amqp.Publishing{
		MessageId: "m-1", Body: []byte("x"),
		Headers: amqp.Table{"ce-type": "a", "%ce-type": "b"},
	})
	select {
	case r := <-got:
		if want := map[string]string{"%ce-type": "a", "%%25ce-type": "b"}; !maps.Equal(r.m.Headers, want) {
			t.Errorf("headers %q, want %q (R85)", r.m.Headers, want)
		}
		if r.err != nil {
			t.Errorf("publishing the received message again: %v", r.err)
		}
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}
