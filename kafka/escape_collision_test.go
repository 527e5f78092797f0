package kafka_test

import (
	"context"
	"maps"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// R85: received headers are escaped losslessly. A record with headers
// "ce-type" (reserved on Kafka, escaped to "%ce-type") and "%ce-type"
// (whose name the escaped one takes, so it is escaped too) arrives with
// both values.
func TestEscapeCollisionKeepsBothHeaders(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	tr := openT(t)
	c, err := messaging.New(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := unique("fcoll")
	got := make(chan *messaging.Message, 1)
	if _, err := c.Subscribe(ctx, name, "g", func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rawProduce(t, ctx, "topic."+name, kafkago.Message{Key: []byte("k"), Value: []byte("x"), Headers: []kafkago.Header{
		{Key: "ce-type", Value: []byte("a")}, {Key: "%ce-type", Value: []byte("b")}}})
	var m *messaging.Message
	select {
	case m = <-got:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	vals := map[string]bool{}
	for k, v := range m.Headers {
		if n, vv, ok := transport.UnescapeHeader(k, v); ok && (n == "ce-type" || n == "%ce-type") {
			vals[vv] = true
		} else if k == "%ce-type" {
			vals[v] = true
		}
	}
	if want := map[string]string{"%ce-type": "a", "%%25ce-type": "b"}; !maps.Equal(m.Headers, want) {
		t.Errorf("headers %q, want %q (R85)", m.Headers, want)
	}
	if !vals["a"] || !vals["b"] {
		t.Errorf("record headers ce-type=a and %%ce-type=b arrived as %q: a value is lost", m.Headers)
	}
}
