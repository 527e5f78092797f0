package sqs_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/switchboard-go/switchboard/internal/cetest"
	"github.com/switchboard-go/switchboard/messaging"
	sbsqs "github.com/switchboard-go/switchboard/sqs"
	"github.com/switchboard-go/switchboard/transport"
)

func rawSQS(t *testing.T, tr transport.Transport) *sqs.Client {
	t.Helper()
	var c *sqs.Client
	if !tr.As(&c) {
		t.Fatal("transport does not convert to *sqs.Client")
	}
	return c
}

func queueURL(t *testing.T, ctx context.Context, c *sqs.Client, queue string) string {
	t.Helper()
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(sbsqs.QueueName(queue, false))})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

func attrStrings(t *testing.T, m *transport.Message) (map[string]string, string) {
	t.Helper()
	var sm sqstypes.Message
	if m.AsFunc == nil || !m.AsFunc(&sm) {
		t.Fatal("received message does not convert to an SQS message")
	}
	out := map[string]string{}
	for k, v := range sm.MessageAttributes {
		out[k] = aws.ToString(v.StringValue)
	}
	return out, aws.ToString(sm.Body)
}

// TestCloudEventsSDK proves R80, R81, R86 and R87 on SQS with the official
// CloudEvents Go SDK (issue inputs 2, 3, 4): every message Switchboard
// sends, with and without Type, carries top-level attributes named like
// the HTTP binding's headers (ce-specversion, ce-id, ce-source, ce-type,
// ce-time, content-type) that the SDK's HTTP binding decodes into a valid
// event; traceparent and tracestate are top-level attributes; at most 10
// attributes. Switchboard reads the events the SDK writes.
func TestCloudEventsSDK(t *testing.T) {
	tr := open(t, "fifo=false") // raw producers write standard queues here
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := messaging.New(tr, messaging.WithSource("urn:test:sqs"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := uniq(t) + "ce"
	s, err := tr.Subscribe(ctx, transport.Queue(q), "", transport.SubscribeOptions{MaxInFlight: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	full := map[string]string{"traceparent": tp, "tracestate": "vendor=1", "tenant": "acme", "region": "eu"}
	if err := c.Notify(ctx, q,
		&messaging.Message{ID: "typed", Type: "com.example.sent", ContentType: "application/json", Time: at,
			Body: []byte(`{"n":1}`), Headers: map[string]string{"traceparent": tp}},
		&messaging.Message{ID: "untyped", Body: []byte("plain")},
		&messaging.Message{ID: "full", Type: "t", Key: "k", Version: "3", CorrelationID: "corr", ReplyTo: "inbox-1",
			ContentType: "text/plain", Body: []byte{}, Headers: full},
	); err != nil {
		t.Fatal(err)
	}
	for _, m := range recvN(t, s, 3, true) {
		attrs, body := attrStrings(t, m)
		if len(attrs) > 10 {
			t.Errorf("message %s: %d attributes, SQS allows 10: %v", m.ID, len(attrs), attrs)
		}
		for _, name := range []string{"ce-specversion", "ce-id", "ce-source", "ce-type"} {
			if attrs[name] == "" {
				t.Errorf("message %s: no top-level attribute %s: %v", m.ID, name, attrs)
			}
		}
		if body == "-" {
			body = "" // the empty-body marker (sb-body-encoding=empty)
		}
		ev, err := cetest.ToEvent(ctx, cetest.HTTPHeader(attrs, []byte(body)))
		if err != nil {
			t.Fatalf("message %s: the CloudEvents SDK rejects it: %v (attributes %v)", m.ID, err, attrs)
		}
		switch m.ID {
		case "typed":
			if ev.Type() != "com.example.sent" || ev.Source() != "urn:test:sqs" || !ev.Time().Equal(at) || ev.DataContentType() != "application/json" {
				t.Errorf("SDK event %v", ev)
			}
			if attrs["traceparent"] != tp || attrs["ce-time"] == "" {
				t.Errorf("traceparent or ce-time is not a top-level attribute: %v", attrs)
			}
		case "untyped":
			if ev.Type() != transport.DefaultType || m.Type != "" {
				t.Errorf("untyped: SDK type %q, Switchboard Type %q", ev.Type(), m.Type)
			}
		case "full":
			// 10 attributes: the trace context and what a responder
			// needs are top-level; ce-time and the rest are packed.
			if attrs["traceparent"] != tp || attrs["tracestate"] != "vendor=1" || attrs["ce-correlationid"] != "corr" || attrs["ce-replyto"] != "inbox-1" {
				t.Errorf("trace context or reply routing not top-level: %v", attrs)
			}
			if m.Time.IsZero() {
				t.Errorf("full message lost its time (packed ce-time)")
			}
			if m.Key != "k" || m.Version != "3" || m.CorrelationID != "corr" || m.ReplyTo != "inbox-1" || !maps.Equal(m.Headers, full) {
				t.Errorf("full message read back as %+v", m)
			}
		}
	}

	// The SDK writes (HTTP binding headers as attributes), Switchboard reads.
	ev := cloudevents.NewEvent()
	ev.SetID("sdk-1")
	ev.SetSource("https://example.com/sdk")
	ev.SetType("com.example.sdk.written")
	ev.SetTime(at)
	ev.SetExtension("tenant", "acme")
	if err := ev.SetData("application/json", map[string]int{"n": 7}); err != nil {
		t.Fatal(err)
	}
	h, body, err := cetest.FromEventHTTP(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawSQS(t, tr)
	ma := map[string]sqstypes.MessageAttributeValue{}
	for k, v := range h {
		if strings.HasPrefix(k, "ce-") || k == "content-type" {
			ma[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	if _, err := raw.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL(t, ctx, raw, q)), MessageBody: aws.String(string(body)), MessageAttributes: ma}); err != nil {
		t.Fatal(err)
	}
	got := recvN(t, s, 1, true)[0]
	if got.ID != "sdk-1" || got.Source != "https://example.com/sdk" || got.Type != "com.example.sdk.written" || !got.Time.Equal(at) ||
		got.ContentType != "application/json" || !maps.Equal(got.Headers, map[string]string{"tenant": "acme"}) || string(got.Body) != `{"n":7}` {
		t.Errorf("SDK event read as %+v", got)
	}
}

// TestForeignMessages proves R84 and R85 on SQS: a plain message gets the
// SQS MessageId as ID; a Binary attribute that is not valid UTF-8 and an
// attribute named like another binding's attribute arrive escaped, never
// as envelope fields, and the received message can be sent again.
func TestForeignMessages(t *testing.T) {
	tr := open(t, "fifo=false") // raw producers write standard queues here
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := messaging.New(tr, messaging.WithSource("urn:test:sqs-relay"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := uniq(t)
	q, again := p+"foreign", p+"again"
	got, gotAgain := make(chan *messaging.Message, 1), make(chan *messaging.Message, 1)
	l, err := c.Listen(ctx, q, func(ctx context.Context, m *messaging.Message) error {
		if err := c.Notify(ctx, again, m); err != nil {
			t.Errorf("sending the received message again: %v", err)
		}
		got <- m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l2, err := c.Listen(ctx, again, func(_ context.Context, m *messaging.Message) error { gotAgain <- m; return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	raw := rawSQS(t, tr)
	out, err := raw.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL(t, ctx, raw, q)), MessageBody: aws.String("plain"),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"bin":            {DataType: aws.String("Binary"), BinaryValue: []byte{0xff, 0xfe}},
			"cloudEvents_id": {DataType: aws.String("String"), StringValue: aws.String("forged")},
			"tenant":         {DataType: aws.String("String"), StringValue: aws.String("acme")},
		}})
	if err != nil {
		t.Fatal(err)
	}
	var m *messaging.Message
	select {
	case m = <-got:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if m.ID != aws.ToString(out.MessageId) {
		t.Errorf("ID %q, want the SQS MessageId %q", m.ID, aws.ToString(out.MessageId))
	}
	want := map[string]string{"%bin": "%FF%FE", "%cloudEvents_id": "forged", "tenant": "acme"}
	if !maps.Equal(m.Headers, want) {
		t.Errorf("headers %q, want %q", m.Headers, want)
	}
	select {
	case m2 := <-gotAgain:
		if m2.ID != m.ID || !maps.Equal(m2.Headers, want) {
			t.Errorf("sent again: ID %q headers %q", m2.ID, m2.Headers)
		}
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
}
