package sqs_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/switchboard-go/switchboard/messaging"
	sbsqs "github.com/switchboard-go/switchboard/sqs"
)

func strAttr(v string) sqstypes.MessageAttributeValue {
	return sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
}

// R85 / README: "Messages from other producers are delivered whatever they
// carry ... so a received message can always be published again or
// redriven." A foreign SQS message whose attributes the codec cannot
// decode (an attribute named sb-headers that is not JSON, or
// sb-body-encoding with an unknown value) is "delivered raw" with its
// attributes as headers; they must be escaped (R85): sb-headers /
// sb-body-encoding / ce-* are reserved names, which Notify of the
// received message would refuse with ErrInvalid. The ce- attributes set
// the envelope, as for a message the codec decodes.
func TestForeignUndecodableRepublish(t *testing.T) {
	tr := open(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := messaging.New(tr, messaging.WithSource("urn:test:break"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := uniq(t)
	q := p + "undec"
	type result struct {
		m   *messaging.Message
		err error
	}
	got := make(chan result, 4)
	l, err := c.Listen(ctx, q, func(ctx context.Context, m *messaging.Message) error {
		got <- result{m, c.Notify(ctx, p+"again", m)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := c.Listen(ctx, p+"again", func(context.Context, *messaging.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	raw := rawSQS(t, tr)
	u := fifoQueueURL(t, ctx, raw, q)
	for _, attrs := range []map[string]sqstypes.MessageAttributeValue{
		{"sb-headers": strAttr("not json"), "tenant": strAttr("acme")},
		{"sb-body-encoding": strAttr("rot13"), "ce-type": strAttr("com.example.x"), "ce-id": strAttr("f-1")},
	} {
		if _, err := raw.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(u), MessageBody: aws.String("body"), MessageAttributes: attrs, MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(keys(attrs)[0])}); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r.err != nil {
				t.Errorf("attributes %v: received headers %q; publishing the received message again: %v", keys(attrs), r.m.Headers, r.err)
			}
			if _, ok := attrs["ce-id"]; ok && (r.m.ID != "f-1" || r.m.Type != "com.example.x") {
				t.Errorf("attributes %v: ID %q Type %q, want f-1 and com.example.x from ce-id and ce-type", keys(attrs), r.m.ID, r.m.Type)
			}
		case <-ctx.Done():
			t.Fatalf("attributes %v: not delivered: %v", keys(attrs), ctx.Err())
		}
	}
}

// Header names of other casings and other bindings on SQS (CE_ID,
// Content-Type, cloudevents_type, next to ce-source): the HTTP binding's
// names are case-insensitive, so Content-Type is the content type; the
// others must not set envelope fields, and the message must be publishable
// again.
func TestForeignOtherCasings(t *testing.T) {
	tr := open(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := messaging.New(tr, messaging.WithSource("urn:test:break"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := uniq(t)
	q := p + "casing"
	type result struct {
		m   *messaging.Message
		err error
	}
	got := make(chan result, 1)
	l, err := c.Listen(ctx, q, func(ctx context.Context, m *messaging.Message) error {
		got <- result{m, c.Notify(ctx, p+"again2", m)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := c.Listen(ctx, p+"again2", func(context.Context, *messaging.Message) error { return nil }); err != nil {
		t.Fatal(err)
	}
	raw := rawSQS(t, tr)
	out, err := raw.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(fifoQueueURL(t, ctx, raw, q)), MessageBody: aws.String(`{"a":1}`), MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d1"),
		MessageAttributes: map[string]sqstypes.MessageAttributeValue{
			"CE_ID":            strAttr("forged-id"),
			"Content-Type":     strAttr("application/json"),
			"cloudevents_type": strAttr("forged.type"),
			"ce-source":        strAttr("urn:foreign"),
		}})
	if err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-got:
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	m := r.m
	if m.ID != aws.ToString(out.MessageId) {
		t.Errorf("ID %q, want the SQS MessageId %q (CE_ID is not ce-id on SQS)", m.ID, aws.ToString(out.MessageId))
	}
	if m.Type != "" {
		t.Errorf("Type %q, want empty (cloudevents_type is not an SQS envelope attribute)", m.Type)
	}
	if m.ContentType != "application/json" {
		t.Errorf("ContentType %q, want application/json from the Content-Type attribute (headers: %q)", m.ContentType, m.Headers)
	}
	if m.Source != "urn:foreign" {
		t.Errorf("Source %q, want urn:foreign", m.Source)
	}
	if r.err != nil {
		t.Errorf("publishing the received message again: %v (headers %q)", r.err, m.Headers)
	}
}

func fifoQueueURL(t *testing.T, ctx context.Context, c *sqs.Client, queue string) string {
	t.Helper()
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(sbsqs.QueueName(queue, true))})
	if err != nil {
		return queueURL(t, ctx, c, queue)
	}
	return aws.ToString(out.QueueUrl)
}

func keys(m map[string]sqstypes.MessageAttributeValue) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
