package rabbitmq

import (
	"context"
	"maps"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/internal/cetest"
	"github.com/switchboard-go/switchboard/internal/wiretest"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

func rawDelivery(t *testing.T, m *transport.Message) *amqp.Delivery {
	t.Helper()
	var d *amqp.Delivery
	if m.AsFunc == nil || !m.AsFunc(&d) {
		t.Fatal("received message does not convert to an amqp091 delivery")
	}
	return d
}

// ceFromDelivery reads a delivery as the CloudEvents AMQP binding does:
// application properties under prefix, the content-type property.
func ceFromDelivery(d *amqp.Delivery, prefix string) *cetest.Binary {
	h := make(map[string]string, len(d.Headers))
	for k, v := range d.Headers {
		h[k] = headerString(v)
	}
	return &cetest.Binary{Prefix: prefix, Headers: h, ContentType: d.ContentType, Body: d.Body}
}

// rawChannel opens an amqp091 channel of its own, as a service not
// written with Switchboard would.
func rawCEChannel(t *testing.T) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(brokerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	return ch
}

func rawCEPublish(t *testing.T, ctx context.Context, ch *amqp.Channel, exchange, key string, p amqp.Publishing) {
	t.Helper()
	c, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, p)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("publish not confirmed: %v", err)
	}
}

// TestCloudEventsSDK proves R80, R81 and R86 on RabbitMQ with the official
// CloudEvents Go SDK (AMQP binding, binary mode; issue inputs 1, 2, 4):
// every message Switchboard publishes, with and without Type, decodes as a
// valid CloudEvent from the cloudEvents_ application properties and the
// content-type property; and Switchboard reads the events the SDK writes,
// under either of the binding's prefixes.
func TestCloudEventsSDK(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 60*time.Second)
	c, err := messaging.New(tr, messaging.WithSource("urn:test:rabbitmq"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := p + "ce"
	s, err := tr.Subscribe(ctx, transport.Topic(topic), "g", transport.SubscribeOptions{MaxInFlight: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	if err := c.Publish(ctx, topic,
		&messaging.Message{ID: "sb-evt-1", Type: "com.example.sent", ContentType: "application/json", Key: "k", Version: "2",
			Time: at, Body: []byte(`{"n":1}`), Headers: map[string]string{"tenant": "acme"}},
		&messaging.Message{ID: "untyped", Body: []byte("plain")},
	); err != nil {
		t.Fatal(err)
	}
	for _, m := range recvN(t, ctx, s, 2, true) {
		d := rawDelivery(t, m)
		ev, err := cetest.ToEvent(ctx, ceFromDelivery(d, AttrPrefix))
		if err != nil {
			t.Fatalf("message %s: the CloudEvents SDK rejects it: %v (headers %v)", m.ID, err, d.Headers)
		}
		switch m.ID {
		case "sb-evt-1":
			if ev.ID() != "sb-evt-1" || ev.Type() != "com.example.sent" || ev.Source() != "urn:test:rabbitmq" || !ev.Time().Equal(at) ||
				ev.DataContentType() != "application/json" || ev.Extensions()["partitionkey"] != "k" || ev.Extensions()["dataversion"] != "2" {
				t.Errorf("SDK event %v", ev)
			}
			if d.MessageId != "sb-evt-1" || d.Type != "com.example.sent" || d.ContentType != "application/json" {
				t.Errorf("native properties message-id %q type %q content-type %q", d.MessageId, d.Type, d.ContentType)
			}
		case "untyped":
			if ev.Type() != transport.DefaultType || m.Type != "" {
				t.Errorf("untyped: SDK type %q, Switchboard Type %q", ev.Type(), m.Type)
			}
		}
	}

	// The SDK writes, Switchboard reads, under either prefix.
	ch := rawCEChannel(t)
	for i, prefix := range []string{"cloudEvents_", "cloudEvents:"} {
		ev := cloudevents.NewEvent()
		ev.SetID("sdk-" + prefix)
		ev.SetSource("https://example.com/sdk")
		ev.SetType("com.example.sdk.written")
		ev.SetTime(at)
		ev.SetExtension("tenant", "acme")
		if err := ev.SetData("application/json", map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
		b, err := cetest.FromEvent(ctx, ev, prefix)
		if err != nil {
			t.Fatal(err)
		}
		tbl := amqp.Table{}
		for k, v := range b.Headers {
			tbl[k] = v
		}
		rawCEPublish(t, ctx, ch, tr.ExchangeName(topic), "", amqp.Publishing{Headers: tbl, ContentType: b.ContentType, Body: b.Body})
		got := recvN(t, ctx, s, 1, true)[0]
		if got.ID != "sdk-"+prefix || got.Source != "https://example.com/sdk" || got.Type != "com.example.sdk.written" || !got.Time.Equal(at) ||
			got.ContentType != "application/json" || !maps.Equal(got.Headers, map[string]string{"tenant": "acme"}) {
			t.Errorf("SDK event (prefix %s) read as %+v", prefix, got)
		}
	}
}

// TestForeignDeliveries proves R82, R84 and R85 on RabbitMQ with messages
// from a plain amqp091 producer: application properties named like
// another binding's attributes never set the envelope (issue input 6);
// properties that are not valid UTF-8 arrive escaped, so that the message
// can be published again and redriven (input 7).
func TestForeignDeliveries(t *testing.T) {
	p := uniq(t)
	tr := openT(t, p, "")
	ctx := ctxT(t, 90*time.Second)
	c, err := messaging.New(tr, messaging.WithSource("urn:test:rabbitmq-relay"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	topic := p + "foreign"
	wait := wiretest.Republish(t, ctx, c, topic)
	ch := rawCEChannel(t)
	rawCEPublish(t, ctx, ch, tr.ExchangeName(topic), "", amqp.Publishing{
		MessageId: "native-1", Type: "native.type", ContentType: "text/plain", Body: []byte("plain"),
		Headers: amqp.Table{"ce_id": "forged-id", "ce-type": "forged", "Content-Type": "text/forged", "x-death": "forged",
			"caf\xe9": []byte("\xff\xfe"), "ok": "v", "%ce-type": "b"},
	})
	first, _, _ := wait()
	if first.ID != "native-1" || first.Type != "native.type" || first.ContentType != "text/plain" {
		t.Errorf("envelope ID %q Type %q ContentType %q; want the native properties", first.ID, first.Type, first.ContentType)
	}
	want := map[string]string{"%ce_id": "forged-id", "%ce-type": "forged", "%Content-Type": "text/forged", "%x-death": "forged",
		"%caf%E9": "%FF%FE", "ok": "v",
		"%%25ce-type": "b"} // the escaped "ce-type" takes its name: escaped too (R85)
	if !maps.Equal(first.Headers, want) {
		t.Errorf("headers %q, want %q", first.Headers, want)
	}
}
