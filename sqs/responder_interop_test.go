package sqs_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/switchboard-go/switchboard/messaging"
	sbsqs "github.com/switchboard-go/switchboard/sqs"
)

// TestRawResponder answers a Switchboard Request with a responder written
// on aws-sdk-go-v2's SQS client alone, as README.md's "Talking to services
// not written with Switchboard" says: the request queue is
// sqs.QueueName(service + ".rpc"); the reply goes to the queue URL in the
// request's ce-replyto attribute, with the request's ce-correlationid; the
// deadline is sb-deadline in the sb-headers JSON attribute.
func TestRawResponder(t *testing.T) {
	tr := open(t, "fifo=false") // a raw responder on a standard queue; FIFO (the default) also needs MessageGroupId
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := messaging.New(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	svc := uniq(t) + "prices"
	raw := rawSQS(t, tr)
	cq, err := raw.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(sbsqs.QueueName(svc+".rpc", false))})
	if err != nil {
		t.Fatal(err)
	}
	deadlines := make(chan string, 1)
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for rctx.Err() == nil {
			out, err := raw.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{QueueUrl: cq.QueueUrl, MessageAttributeNames: []string{"All"},
				WaitTimeSeconds: 1, MaxNumberOfMessages: 10})
			if err != nil {
				continue
			}
			for _, m := range out.Messages {
				attr := func(n string) string { return aws.ToString(m.MessageAttributes[n].StringValue) }
				var h map[string]string
				_ = json.Unmarshal([]byte(attr("sb-headers")), &h)
				deadlines <- h["sb-deadline"]
				_, err := raw.SendMessage(rctx, &sqs.SendMessageInput{QueueUrl: aws.String(attr("ce-replyto")),
					MessageBody: aws.String("price of " + aws.ToString(m.Body)),
					MessageAttributes: map[string]sqstypes.MessageAttributeValue{
						"ce-correlationid": {DataType: aws.String("String"), StringValue: aws.String(attr("ce-correlationid"))},
						"content-type":     {DataType: aws.String("String"), StringValue: aws.String("text/plain")},
					}})
				if err != nil {
					t.Errorf("reply: %v", err)
				}
				raw.DeleteMessage(rctx, &sqs.DeleteMessageInput{QueueUrl: cq.QueueUrl, ReceiptHandle: m.ReceiptHandle})
			}
		}
	}()
	defer func() { rcancel(); <-done }()

	qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
	defer qcancel()
	reply, err := c.Request(qctx, svc, &messaging.Message{Body: []byte("book")})
	if err != nil {
		t.Fatalf("Request answered by a raw SQS responder: %v", err)
	}
	if string(reply.Body) != "price of book" || reply.ContentType != "text/plain" {
		t.Errorf("reply %+v", reply)
	}
	ms, err := strconv.ParseInt(<-deadlines, 10, 64)
	if dl, _ := qctx.Deadline(); err != nil || time.UnixMilli(ms).Sub(dl).Abs() > time.Second {
		t.Errorf("sb-deadline %v (%v), want the request's deadline %v", time.UnixMilli(ms), err, dl)
	}
}
