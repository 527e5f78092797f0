package kafka_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/messaging"
)

// TestRawResponder answers a Switchboard Request with a responder written
// on kafka-go alone, as README.md's "Talking to services not written with
// Switchboard" says: the request queue is the Kafka topic
// "queue.<service>.rpc"; the reply is a record on the topic named by the
// request's ce_replyto header, with the request's ce_correlationid; the
// deadline is the sb-deadline header.
func TestRawResponder(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	brokers := testBrokers(t)
	tr := openT(t)
	c, err := messaging.New(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	svc := unique("prices")
	topic := "queue." + svc + ".rpc"

	tp := &kafkago.Transport{}
	defer tp.CloseIdleConnections()
	kc := &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: tp}
	res, err := kc.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatal(err)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), Transport: tp, BatchTimeout: time.Millisecond, RequiredAcks: kafkago.RequireAll}
	deadlines := make(chan string, 1)
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.ReadMessage(rctx)
			if err != nil {
				return
			}
			h := map[string]string{}
			for _, x := range m.Headers {
				h[x.Key] = string(x.Value)
			}
			deadlines <- h["sb-deadline"]
			reply := kafkago.Message{Topic: h["ce_replyto"], Value: append([]byte("price of "), m.Value...),
				Headers: []kafkago.Header{{Key: "ce_correlationid", Value: []byte(h["ce_correlationid"])}, {Key: "content-type", Value: []byte("text/plain")}}}
			for {
				// kafka-go's writer fails on a topic missing from its
				// metadata cache (just created): try again.
				err = w.WriteMessages(rctx, reply)
				if !errors.Is(err, kafkago.UnknownTopicOrPartition) || rctx.Err() != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil && rctx.Err() == nil {
				t.Errorf("reply: %v", err)
			}
		}
	}()
	defer func() { rcancel(); <-done; r.Close(); w.Close() }()

	qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
	defer qcancel()
	reply, err := c.Request(qctx, svc, &messaging.Message{Body: []byte("book")})
	if err != nil {
		t.Fatalf("Request answered by a raw kafka-go responder: %v", err)
	}
	if string(reply.Body) != "price of book" || reply.ContentType != "text/plain" {
		t.Errorf("reply %+v", reply)
	}
	ms, err := strconv.ParseInt(<-deadlines, 10, 64)
	if dl, _ := qctx.Deadline(); err != nil || time.UnixMilli(ms).Sub(dl).Abs() > time.Second {
		t.Errorf("sb-deadline %v (%v), want the request's deadline %v", time.UnixMilli(ms), err, dl)
	}
}
