package conformance

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// wireCases are the Wire cases: the wire mapping: CloudEvents attributes, reserved header names, foreign messages.
var wireCases = []testCase{
	{"Wire", "SourceRoundTrip", wireSourceRoundTrip},
	{"Wire", "ReservedWireHeaderRejected", wireReservedWireHeaderRejected},
	{"Wire", "NoTypeStillValid", wireNoTypeStillValid},
	{"Wire", "RepublishReceivedUnchanged", wireRepublishReceivedUnchanged},
	{"Wire", "EscapedHeaderRoundTrip", wireEscapedHeaderRoundTrip},
}

// wireSourceRoundTrip proves R81: Message.Source round-trips; a message
// without one carries the client's source (WithSource).
func wireSourceRoundTrip(e *env) {
	c := e.client(messaging.WithSource("urn:switchboard:conformance:" + randomID(6)))
	topic := e.name("t")
	r := &recorder{}
	e.subscribe(c, topic, e.name("g"), r.handle)
	e.publish(c, topic,
		&messaging.Message{Key: "k", Body: []byte("own"), Source: "https://example.com/orders/" + randomID(4)},
		&messaging.Message{Key: "k", Body: []byte("default")})
	e.awaitBodies(r, "own", "default")
	for _, m := range r.all() {
		if m.Source == "" || (string(m.Body) == "default") != strings.HasPrefix(m.Source, "urn:switchboard:conformance:") {
			e.Errorf("message %q arrived with Source %q", m.Body, m.Source)
		}
		if string(m.Body) == "own" && !strings.HasPrefix(m.Source, "https://example.com/orders/") {
			e.Errorf("message with its own Source arrived with %q", m.Source)
		}
	}
}

// wireReservedWireHeaderRejected proves R82: application headers named
// like the wire mapping (CloudEvents attributes under any binding's
// prefix, content-type, adapter headers), in any case, are ErrInvalid on
// every way of sending, and the error names the header.
func wireReservedWireHeaderRejected(e *env) {
	c := e.client()
	e.serveEcho(c)
	for _, name := range []string{"ce_id", "CE_TYPE", "ce-source", "Ce-Id", "cloudEvents:id", "cloudEvents_type", "CLOUDEVENTS_X",
		"content-type", "Content-Type", "x-delivery-count", "switchboard:long-headers"} {
		m := &messaging.Message{Body: []byte("x"), Headers: map[string]string{"ok": "1", name: "forged"}}
		for what, call := range e.messageCalls(c, m) {
			err := e.noPanic(what, call)
			e.mustErr(fmt.Sprintf("%s with header %q", what, name), err, messaging.ErrInvalid)
			if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
				e.Errorf("%s with header %q: error %q does not name the header", what, name, err)
			}
		}
	}
	// Names that merely resemble the reserved ones are ordinary headers.
	h := map[string]string{"cex": "1", "c-e_id": "2", "content-type-x": "3", "my-ce_id": "4"}
	got := e.roundTrip(c, &messaging.Message{Key: "k", Body: []byte("ok"), Headers: h})
	if !maps.Equal(got.Headers, h) {
		e.Errorf("headers %q, want %q", got.Headers, h)
	}
}

// wireNoTypeStillValid proves R80 as far as it is generic: a message
// without Type is written with the CloudEvents type
// transport.DefaultType, which every transport's decode path reads back as
// no type; a message whose Type is set keeps it. (The per-broker tests
// *_cloudevents_test.go validate the wire form with the CloudEvents SDK.)
func wireNoTypeStillValid(e *env) {
	tr := e.transport()
	q := transport.Queue(e.name("q"))
	sub, err := tr.Subscribe(e.ctx, q, "", transport.SubscribeOptions{MaxInFlight: 4})
	if err != nil {
		e.Fatalf("Subscribe: %v", err)
	}
	defer sub.Close()
	sent := []*transport.Message{
		{ID: e.name("none"), Body: []byte("none"), Time: time.Now()},
		{ID: e.name("typed"), Body: []byte("typed"), Type: "order.created", Time: time.Now()},
	}
	if err := tr.Send(e.ctx, q, sent); err != nil {
		e.Fatalf("Send: %v", err)
	}
	got := map[string]*transport.Message{}
	for len(got) < 2 {
		ms, err := sub.Receive(e.ctx, 2)
		if err != nil {
			e.Fatalf("Receive: %v", err)
		}
		ids := make([]any, 0, len(ms))
		for _, m := range ms {
			got[string(m.Body)] = m
			ids = append(ids, m.AckID)
		}
		if err := sub.Ack(e.ctx, ids); err != nil {
			e.Fatalf("Ack: %v", err)
		}
	}
	// (inmem carries the Message itself, with no wire form: Source stays
	// empty there; adapters write transport.DefaultSource.)
	if m := got["none"]; m.Type != "" || m.ID != sent[0].ID || (m.Source != transport.DefaultSource && m.Source != "") {
		e.Errorf("message without Type arrived with Type %q ID %q Source %q; want \"\", %q, %q", m.Type, m.ID, m.Source, sent[0].ID, transport.DefaultSource)
	}
	if m := got["typed"]; m.Type != "order.created" {
		e.Errorf("typed message arrived with Type %q", m.Type)
	}
	// Through messaging, a message without Type arrives without Type.
	c := e.client()
	if m := e.roundTrip(c, &messaging.Message{Key: "k", Body: []byte("x")}); m.Type != "" || m.Source == "" {
		e.Errorf("message without Type arrived with Type %q Source %q", m.Type, m.Source)
	}
}

// wireRepublishReceivedUnchanged proves R83: a received message published
// again, as it is, arrives with the same ID, Source, Key, Type, Version,
// ContentType, Time, headers and body: the event's identity (source, id)
// is kept.
func wireRepublishReceivedUnchanged(e *env) {
	sender := e.client(messaging.WithSource("urn:sender"))
	relay := e.client(messaging.WithSource("urn:relay"))
	t1, t2 := e.name("t1"), e.name("t2")
	out := &recorder{}
	e.subscribe(relay, t2, e.name("g2"), out.handle)
	e.subscribe(relay, t1, e.name("g1"), func(ctx context.Context, m *messaging.Message) error {
		return relay.Publish(ctx, t2, m)
	})
	want := sentFields()
	want.Headers["%ce_id"] = "escaped%2F"
	e.publish(sender, t1, want)
	e.awaitCount(out, 1)
	got := out.all()[0]
	e.checkFields(got, want, t2)
	if got.Source != "urn:sender" {
		e.Errorf("republished message has Source %q, want the original %q", got.Source, "urn:sender")
	}
}

// wireEscapedHeaderRoundTrip proves R85 as far as it is generic: headers
// in the escaped form transport.EscapeHeader gives a received foreign
// header (a "%" name, percent-encoded name and value) are ordinary
// headers: they may be published and arrive unchanged, and
// transport.UnescapeHeader restores the original.
func wireEscapedHeaderRoundTrip(e *env) {
	c := e.client()
	name, value := transport.EscapeHeader("ce_id\xff", "v\xfe%")
	h := map[string]string{name: value, "plain": "p"}
	got := e.roundTrip(c, &messaging.Message{Key: "k", Body: []byte("esc"), Headers: h})
	if !maps.Equal(got.Headers, h) {
		e.Errorf("headers %q, want %q", got.Headers, h)
	}
	n, v, ok := transport.UnescapeHeader(name, got.Headers[name])
	if !ok || n != "ce_id\xff" || !bytes.Equal([]byte(v), []byte("v\xfe%")) {
		e.Errorf("UnescapeHeader(%q, %q) = %q, %q, %v", name, got.Headers[name], n, v, ok)
	}
}
