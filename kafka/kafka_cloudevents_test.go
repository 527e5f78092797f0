package kafka_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/internal/cetest"
	"github.com/switchboard-go/switchboard/internal/wiretest"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// rawHeaders returns a received message's record headers as the wire
// carries them.
func rawRecord(t *testing.T, m *transport.Message) kafkago.Message {
	t.Helper()
	var km kafkago.Message
	if m.AsFunc == nil || !m.AsFunc(&km) {
		t.Fatal("received message does not convert to a kafka-go message")
	}
	return km
}

func ceBinary(km kafkago.Message) *cetest.Binary {
	h := make(map[string]string, len(km.Headers))
	for _, x := range km.Headers {
		h[x.Key] = string(x.Value)
	}
	return &cetest.Binary{Prefix: "ce_", Headers: h, Body: km.Value}
}

// produce writes records to a Kafka topic with kafka-go's plain writer, as
// a service not written with Switchboard would.
func rawProduce(t *testing.T, ctx context.Context, kafkaTopic string, recs ...kafkago.Message) {
	t.Helper()
	tp := &kafkago.Transport{}
	defer tp.CloseIdleConnections()
	w := &kafkago.Writer{Addr: kafkago.TCP(testBrokers(t)...), Topic: kafkaTopic, RequiredAcks: kafkago.RequireAll,
		BatchTimeout: time.Millisecond, Transport: tp}
	defer w.Close()
	for {
		err := w.WriteMessages(ctx, recs...)
		if err == nil {
			return
		}
		// A topic just created may not be in every metadata response
		// yet: kafka-go's writer then fails the write; try again.
		if !errors.Is(err, kafkago.UnknownTopicOrPartition) || ctx.Err() != nil {
			t.Fatalf("kafka-go write: %v", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestCloudEventsSDK proves R80, R81 and R86 on Kafka with the official
// CloudEvents Go SDK: every message Switchboard publishes, with and
// without Type, decodes as a valid CloudEvent (Kafka protocol binding,
// binary mode); and Switchboard reads the events the SDK writes: source,
// extensions, time, content type.
func TestCloudEventsSDK(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	tr := openT(t)
	c, err := messaging.New(tr, messaging.WithSource("urn:test:kafka"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := unique("ce")
	s := subscribe(t, tr, transport.Topic(name), "g")

	at := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	if err := c.Publish(ctx, name,
		&messaging.Message{ID: "typed", Key: "k1", Type: "com.example.order.created", Version: "2", ContentType: "application/json",
			Time: at, Body: []byte(`{"n":1}`), Headers: map[string]string{"tenant": "acme"}},
		&messaging.Message{ID: "untyped", Body: []byte("plain")},
		&messaging.Message{ID: "sourced", Source: "https://example.com/orders", Body: []byte{}},
	); err != nil {
		t.Fatal(err)
	}
	for _, m := range recv(t, s, 3, true) {
		ev, err := cetest.ToEvent(ctx, ceBinary(rawRecord(t, m)))
		if err != nil {
			t.Fatalf("message %s: the CloudEvents SDK rejects it: %v (event %v)", m.ID, err, ev)
		}
		switch m.ID {
		case "typed":
			if ev.Type() != "com.example.order.created" || ev.Source() != "urn:test:kafka" || !ev.Time().Equal(at) ||
				ev.DataContentType() != "application/json" || string(ev.Data()) != `{"n":1}` || ev.Extensions()["dataversion"] != "2" {
				t.Errorf("typed: SDK event %v", ev)
			}
		case "untyped":
			if ev.Type() != transport.DefaultType || m.Type != "" {
				t.Errorf("untyped: SDK type %q, Switchboard Type %q", ev.Type(), m.Type)
			}
		case "sourced":
			if ev.Source() != "https://example.com/orders" || m.Source != "https://example.com/orders" {
				t.Errorf("sourced: SDK source %q, Switchboard Source %q", ev.Source(), m.Source)
			}
		}
	}

	// The SDK writes, Switchboard reads.
	ev := cloudevents.NewEvent()
	ev.SetID("sdk-1")
	ev.SetSource("https://example.com/sdk")
	ev.SetType("com.example.sdk.written")
	ev.SetTime(at)
	ev.SetExtension("tenant", "acme")
	ev.SetExtension("priority", 3)
	if err := ev.SetData("application/json", map[string]int{"n": 7}); err != nil {
		t.Fatal(err)
	}
	b, err := cetest.FromEvent(ctx, ev, "ce_")
	if err != nil {
		t.Fatal(err)
	}
	rec := kafkago.Message{Key: []byte("k"), Value: b.Body}
	for k, v := range b.Headers {
		rec.Headers = append(rec.Headers, kafkago.Header{Key: k, Value: []byte(v)})
	}
	rec.Headers = append(rec.Headers, kafkago.Header{Key: "content-type", Value: []byte(b.ContentType)})
	rawProduce(t, ctx, "topic."+name, rec)
	got := recv(t, s, 1, true)[0]
	if got.ID != "sdk-1" || got.Source != "https://example.com/sdk" || got.Type != "com.example.sdk.written" || !got.Time.Equal(at) ||
		got.ContentType != "application/json" || got.Headers["tenant"] != "acme" || got.Headers["priority"] != "3" || string(got.Body) != `{"n":7}` {
		t.Errorf("SDK event read as %+v", got)
	}
}

// TestForeignRecords proves R84–R86 on Kafka with records from a plain
// producer: without ce_time the record timestamp is the Time, and a
// Content-Type header in any case is the content type (issue input 8);
// without ce_id the ID is topic-partition-offset; headers named like
// another binding's attributes never set the envelope, and headers that
// are not valid UTF-8 arrive escaped, so that the message can be published
// again and redriven (input 7).
func TestForeignRecords(t *testing.T) {
	ctx := ctxT(t, 90*time.Second)
	tr := openT(t)
	c, err := messaging.New(tr, messaging.WithSource("urn:test:kafka-relay"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name, name2 := unique("foreign"), unique("foreign2")
	s := subscribe(t, tr, transport.Topic(name), "raw")
	s2 := subscribe(t, tr, transport.Topic(name2), "raw")
	wait := wiretest.Republish(t, ctx, c, name)

	stamp := time.Date(2025, 6, 7, 8, 9, 10, 123_000_000, time.UTC)
	rawProduce(t, ctx, "topic."+name2,
		kafkago.Message{Value: []byte("ce without time"), Time: stamp, Headers: []kafkago.Header{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("no-time")},
			{Key: "ce_source", Value: []byte("urn:foreign")}, {Key: "ce_type", Value: []byte("t")},
			{Key: "Content-Type", Value: []byte("text/plain")},
		}})
	rawProduce(t, ctx, "topic."+name,
		kafkago.Message{Value: []byte("plain"), Time: stamp, Headers: []kafkago.Header{
			{Key: "cloudEvents:id", Value: []byte("forged-id")}, {Key: "ce-type", Value: []byte("forged-type")},
			{Key: "CONTENT-TYPE", Value: []byte("text/csv")},
			{Key: "caf\xe9", Value: []byte("\xff\xfe")}, {Key: "ok", Value: []byte("v\xc3")},
		}},
	)
	ms := append(recv(t, s, 1, true), recv(t, s2, 1, true)...)
	byBody := map[string]*transport.Message{}
	for _, m := range ms {
		byBody[string(m.Body)] = m
	}
	m := byBody["ce without time"]
	if m == nil || !m.Time.Equal(stamp) || m.ContentType != "text/plain" || m.ID != "no-time" || m.Source != "urn:foreign" {
		t.Errorf("CloudEvent without ce_time: %+v; want Time %v (the record's), ContentType text/plain", m, stamp)
	}
	m = byBody["plain"]
	if m == nil {
		t.Fatal("plain record not received")
	}
	km := rawRecord(t, m)
	if want := km.Topic + "-" + strconv.Itoa(km.Partition) + "-" + strconv.FormatInt(km.Offset, 10); m.ID != want {
		t.Errorf("plain record ID %q, want %q", m.ID, want)
	}
	if m.Type != "" || m.ContentType != "text/csv" || !m.Time.Equal(stamp) {
		t.Errorf("plain record: Type %q ContentType %q Time %v", m.Type, m.ContentType, m.Time)
	}
	want := map[string]string{"%cloudEvents:id": "forged-id", "%ce-type": "forged-type", "%caf%E9": "%FF%FE", "%ok": "v%C3"}
	for k, v := range want {
		if m.Headers[k] != v {
			t.Errorf("header %q = %q, want %q (headers %q)", k, m.Headers[k], v, m.Headers)
		}
	}
	if n, v, ok := transport.UnescapeHeader("%caf%E9", m.Headers["%caf%E9"]); !ok || n != "caf\xe9" || v != "\xff\xfe" {
		t.Errorf("UnescapeHeader: %q %q %v", n, v, ok)
	}
	first, _, _ := wait()
	if !maps.Equal(first.Headers, want) {
		t.Errorf("headers through messaging: %q, want %q", first.Headers, want)
	}
}
