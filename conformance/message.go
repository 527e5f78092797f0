package conformance

import (
	"bytes"
	"context"
	"maps"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// roundTrip publishes m to a new group and returns it as received.
func (e *env) roundTrip(c *messaging.Client, m *messaging.Message) *messaging.Message {
	e.Helper()
	topic := e.name("t")
	r := &recorder{}
	e.subscribe(c, topic, e.name("g"), r.handle)
	e.publish(c, topic, m)
	e.awaitCount(r, 1)
	return r.all()[0]
}

// messageHeaders proves R3: application headers arrive unchanged: many of
// them, empty values, Unicode, and names that differ only in case.
func messageHeaders(e *env) {
	c := e.client()
	h := map[string]string{
		"tenant": "acme", "empty": "", "unicode-值": "ünï ✓ 日本", "Case": "upper", "case": "lower",
		"with space": "a b", "x-trace-id": "00-abc-01", "json": `{"a":[1,2]}`,
	}
	got := e.roundTrip(c, &messaging.Message{Key: "k", Body: []byte("h"), Headers: h})
	if !maps.Equal(got.Headers, h) {
		e.Errorf("headers %q, want %q", got.Headers, h)
	}
	if got.Header("tenant") != "acme" {
		e.Errorf("Header(tenant) = %q", got.Header("tenant"))
	}
}

// messageBinaryBody proves R3: a body with every byte value arrives
// unchanged.
func messageBinaryBody(e *env) {
	c := e.client()
	body := make([]byte, 512)
	for i := range body {
		body[i] = byte(i)
	}
	got := e.roundTrip(c, &messaging.Message{Key: "k", Body: body, ContentType: "application/octet-stream"})
	if !bytes.Equal(got.Body, body) {
		e.Errorf("binary body of %d bytes changed (%d bytes received)", len(body), len(got.Body))
	}
}

// messageEmptyBody proves R3: nil and empty bodies arrive as empty bodies.
func messageEmptyBody(e *env) {
	c := e.client()
	topic := e.name("t")
	r := &recorder{}
	e.subscribe(c, topic, e.name("g"), r.handle)
	e.publish(c, topic, &messaging.Message{ID: e.name("nil"), Key: "k"}, &messaging.Message{ID: e.name("empty"), Key: "k", Body: []byte{}})
	e.awaitCount(r, 2)
	for _, m := range r.all() {
		if len(m.Body) != 0 {
			e.Errorf("message %s: body of %d bytes, want empty", m.ID, len(m.Body))
		}
	}
}

// messageLargeBody proves R3: a body of min(MaxMessageSize/2, 256 KiB)
// arrives unchanged.
func messageLargeBody(e *env) {
	c := e.client()
	body := patterned(largeBodySize(c), 3)
	got := e.roundTrip(c, &messaging.Message{Key: "k", Body: body})
	if !bytes.Equal(got.Body, body) {
		e.Errorf("large body of %d bytes changed (%d bytes received)", len(body), len(got.Body))
	}
}

// sentFields returns a message with every field set.
func sentFields() *messaging.Message {
	return &messaging.Message{
		ID:          "id-" + randomID(12),
		Key:         "key-1",
		Headers:     map[string]string{"a": "1", "b": "2"},
		Body:        []byte(`{"ok":true}`),
		ContentType: "application/json",
		Type:        "order.created",
		Version:     "2",
		Time:        time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC),
	}
}

// checkFields compares every field of a received message with the sent
// one; Time to the millisecond.
func (e *env) checkFields(got, want *messaging.Message, topic string) {
	e.Helper()
	if got.ID != want.ID || got.Key != want.Key || got.ContentType != want.ContentType || got.Type != want.Type || got.Version != want.Version {
		e.Errorf("received ID %q Key %q ContentType %q Type %q Version %q; want %q %q %q %q %q",
			got.ID, got.Key, got.ContentType, got.Type, got.Version, want.ID, want.Key, want.ContentType, want.Type, want.Version)
	}
	if !maps.Equal(got.Headers, want.Headers) || !bytes.Equal(got.Body, want.Body) {
		e.Errorf("received headers %q body %q; want %q %q", got.Headers, got.Body, want.Headers, want.Body)
	}
	if !got.Time.Truncate(time.Millisecond).Equal(want.Time.Truncate(time.Millisecond)) {
		e.Errorf("received Time %v, want %v (to the millisecond)", got.Time, want.Time)
	}
	if got.Attempt != 1 {
		e.Errorf("received Attempt %d, want 1", got.Attempt)
	}
	if got.ReceivedFrom != topic {
		e.Errorf("received Topic %q, want %q", got.ReceivedFrom, topic)
	}
}

// messageAllFields proves R3: ID, Key, Headers, Body, ContentType, Type,
// Version and Time (to the millisecond) round-trip; Attempt is 1 on first
// delivery and Topic names the topic.
func messageAllFields(e *env) {
	c := e.client()
	want := sentFields()
	got := e.roundTrip(c, want)
	e.checkFields(got, want, e.name("t"))
	if want.ID == "" || want.Attempt != 0 || want.ReceivedFrom != "" {
		e.Errorf("Publish modified the message it was given: %+v", want)
	}
}

// messageGeneratedIDAndTime proves R3: a message sent without ID or Time
// gets a unique ID and the time it was sent; the caller's message is not
// modified.
func messageGeneratedIDAndTime(e *env) {
	c := e.client()
	topic := e.name("t")
	r := &recorder{}
	e.subscribe(c, topic, e.name("g"), r.handle)
	m1, m2 := msg("k", "a"), msg("k", "b")
	before := time.Now()
	e.publish(c, topic, m1, m2)
	after := time.Now()
	e.awaitBodies(r, "a", "b")
	if m1.ID != "" || !m1.Time.IsZero() {
		e.Errorf("Publish modified the message it was given: ID %q Time %v", m1.ID, m1.Time)
	}
	ids := map[string]bool{}
	for _, m := range r.all() {
		if m.ID == "" {
			e.Errorf("received an empty ID")
		}
		ids[m.ID] = true
		if m.Time.Before(before.Add(-time.Second)) || m.Time.After(after.Add(time.Second)) {
			e.Errorf("received Time %v, want about %v", m.Time, before)
		}
	}
	if len(ids) != 2 {
		e.Errorf("two messages got %d distinct IDs", len(ids))
	}
}

// messageFieldsViaNotify proves R3 for Notify/Listen.
func messageFieldsViaNotify(e *env) {
	c := e.client()
	rcpt := e.name("r")
	r := &recorder{}
	e.listen(c, rcpt, r.handle)
	want := sentFields()
	e.notify(c, rcpt, want)
	e.awaitCount(r, 1)
	e.checkFields(r.all()[0], want, rcpt)
}

// messageRequestReplyFields proves R3 and R11 for Request/Serve: the
// request's fields reach the responder (its application headers without
// reserved ones) with a correlation ID and reply address; the reply's
// fields reach the requester with the request's correlation ID.
func messageRequestReplyFields(e *env) {
	srv, cli := e.client(), e.client()
	svc := e.name("s")
	reqs := &recorder{}
	replyWant := sentFields()
	replyWant.ID, replyWant.Key, replyWant.Type = "reply-"+randomID(12), "reply-key", "order.quoted"
	e.serve(srv, svc, func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		reqs.add(req)
		r := *replyWant
		return &r, nil
	})
	reqWant := sentFields()
	f, err := cli.RequestAsync(e.ctx, svc, reqWant)
	if err != nil {
		e.Fatalf("RequestAsync: %v", err)
	}
	reply, err := f.Wait(e.ctx)
	if err != nil {
		e.Fatalf("Wait: %v", err)
	}
	req := reqs.all()[0]
	e.checkFields(req, reqWant, svc)
	if req.CorrelationID != f.CorrelationID() || req.ReplyTo == "" {
		e.Errorf("request CorrelationID %q ReplyTo %q; want %q and an address", req.CorrelationID, req.ReplyTo, f.CorrelationID())
	}
	if reply.ID != replyWant.ID || reply.Key != replyWant.Key || reply.Type != replyWant.Type || reply.ContentType != replyWant.ContentType ||
		reply.Version != replyWant.Version || !maps.Equal(reply.Headers, replyWant.Headers) || !bytes.Equal(reply.Body, replyWant.Body) ||
		!reply.Time.Truncate(time.Millisecond).Equal(replyWant.Time.Truncate(time.Millisecond)) {
		e.Errorf("reply %+v, want %+v", reply, replyWant)
	}
	if reply.CorrelationID != f.CorrelationID() {
		e.Errorf("reply CorrelationID %q, want %q", reply.CorrelationID, f.CorrelationID())
	}
	if reqWant.CorrelationID != "" || reqWant.ReplyTo != "" {
		e.Errorf("Request modified the message it was given")
	}
}
