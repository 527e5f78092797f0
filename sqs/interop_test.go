package sqs_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
	sbsqs "github.com/switchboard-go/switchboard/sqs"
	"github.com/switchboard-go/switchboard/transport"
)

// awsCLI runs the aws command line against the test endpoint.
func awsCLI(t *testing.T, ep string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "aws", append([]string{"--endpoint-url", ep, "--region", region, "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_PAGER=")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("aws %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// TestInteropAWSCLI: a message sent by `aws sqs send-message` to a
// group's queue is consumed by Switchboard, and a message sent by
// Switchboard is read by `aws sqs receive-message` with the attribute
// mapping of doc.go.
func TestInteropAWSCLI(t *testing.T) {
	ep := needEndpoint(t)
	if _, err := exec.LookPath("aws"); err != nil {
		testenv.Missing(t, "awscli", "the aws command is not on PATH")
	}
	tr := open(t, "fifo=false") // standard mode: one receiver keeps the send order across keys
	p := uniq(t)
	ctx := context.Background()

	// aws -> Switchboard, through a consumer group's queue.
	topic := p + "interop.events"
	s, err := tr.Subscribe(ctx, transport.Topic(topic), "billing", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var urlOut struct{ QueueUrl string }
	if err := json.Unmarshal(awsCLI(t, ep, "sqs", "get-queue-url", "--queue-name", sbsqs.GroupQueueName(topic, "billing", false) /* standard mode */), &urlOut); err != nil {
		t.Fatal(err)
	}
	attrs := `{"ce-id":{"DataType":"String","StringValue":"from-aws-1"},` +
		`"ce-type":{"DataType":"String","StringValue":"invoice.paid"},` +
		`"content-type":{"DataType":"String","StringValue":"application/json"},` +
		`"tenant":{"DataType":"String","StringValue":"acme"}}`
	awsCLI(t, ep, "sqs", "send-message", "--queue-url", urlOut.QueueUrl,
		"--message-body", `{"amount":42}`, "--message-attributes", attrs)
	got := recvN(t, s, 1, true)[0]
	if got.ID != "from-aws-1" || got.Type != "invoice.paid" || got.ContentType != "application/json" ||
		string(got.Body) != `{"amount":42}` || got.Headers["tenant"] != "acme" || got.DeliveryCount != 1 {
		t.Fatalf("received %+v", got)
	}
	t.Logf("aws sqs send-message -> Switchboard: id=%s type=%s headers=%v body=%s", got.ID, got.Type, got.Headers, got.Body)

	// Switchboard -> aws, through a queue.
	q := p + "interop.q"
	if err := tr.Declare(ctx, transport.Queue(q)); err != nil {
		t.Fatal(err)
	}
	m := &transport.Message{
		ID: "sb-1", Type: "order.created", ContentType: "application/json", Body: []byte(`{"order":7}`),
		Headers: map[string]string{"tenant": "acme", "sb-attempt": "1"}, Time: time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC),
	}
	if err := tr.Send(ctx, transport.Queue(q), []*transport.Message{m}); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(awsCLI(t, ep, "sqs", "get-queue-url", "--queue-name", sbsqs.QueueName(q, false)), &urlOut); err != nil {
		t.Fatal(err)
	}
	var recv struct {
		Messages []struct {
			Body              string
			MessageAttributes map[string]struct{ StringValue, DataType string }
		}
	}
	out := awsCLI(t, ep, "sqs", "receive-message", "--queue-url", urlOut.QueueUrl,
		"--message-attribute-names", "All", "--wait-time-seconds", "5", "--max-number-of-messages", "1")
	if err := json.Unmarshal(out, &recv); err != nil || len(recv.Messages) != 1 {
		t.Fatalf("aws sqs receive-message: %v: %s", err, out)
	}
	rm := recv.Messages[0]
	a := func(n string) string { return rm.MessageAttributes[n].StringValue }
	if rm.Body != `{"order":7}` || a("ce-id") != "sb-1" || a("ce-type") != "order.created" ||
		a("content-type") != "application/json" || a("ce-time") != "2025-05-06T07:08:09Z" ||
		a("sb-headers") != `{"sb-attempt":"1","tenant":"acme"}` {
		t.Fatalf("aws received %s", out)
	}
	t.Logf("Switchboard -> aws sqs receive-message: %s", strings.Join(strings.Fields(string(out)), " "))
}
