package kafka

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// producerCluster starts a one-broker kfake cluster and opens a Transport
// on it with a one-partition topic.
func producerCluster(t *testing.T) (*kfake.Cluster, *Transport, string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := Open(ctx, c.ListenAddrs(), Options{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	const topic = "producer-test"
	if err := tr.ensureTopic(ctx, topic, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.partitionCount(ctx, topic); err != nil {
		t.Fatal(err)
	}
	return c, tr, topic
}

// enqueueN queues n one-record writes of key "k" (values from, from+1,
// ...) to partition 0, in order, without waiting for any, and returns
// their results.
func enqueueN(t *testing.T, tr *Transport, topic string, from, n int) []*writeResult {
	t.Helper()
	rs := make([]*writeResult, n)
	for i := range rs {
		rs[i] = &writeResult{pending: 1, done: make(chan struct{})}
		m := kafkago.Message{Key: []byte("k"), Value: []byte(strconv.Itoa(from + i))}
		if err := tr.producer.enqueue(topicPartition{topic, 0}, &chunk{msgs: []kafkago.Message{m}, bytes: recordSize(&m), res: rs[i]}); err != nil {
			t.Fatal(err)
		}
	}
	return rs
}

func awaitAll(t *testing.T, rs []*writeResult) {
	t.Helper()
	for i, r := range rs {
		select {
		case <-r.done:
			if r.err != nil {
				t.Fatalf("write %d: %v", i, r.err)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("write %d never completed", i)
		}
	}
}

// readValues reads partition 0 of topic from the start: the record values.
func readValues(t *testing.T, brokers []string, topic string, n int) []int {
	t.Helper()
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []int
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read after %d records: %v", len(out), err)
		}
		v, _ := strconv.Atoi(string(m.Value))
		out = append(out, v)
	}
	return out
}

// TestProducerBatchesWhileInFlight: the first write to an idle partition
// is sent at once, alone; the writes queued while its produce request is
// in flight leave together in the next request.
func TestProducerBatchesWhileInFlight(t *testing.T) {
	c, tr, topic := producerCluster(t)
	release, inFlight := make(chan struct{}), make(chan struct{})
	var requests, first atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kr.(*kmsg.ProduceRequest)
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(req.Topics[0].Partitions[0].Records); err != nil {
			t.Errorf("record batch: %v", err)
		}
		if requests.Add(1) == 1 {
			first.Store(int64(batch.NumRecords))
			close(inFlight)
			<-release // hold the first request in flight
		}
		return nil, nil, false
	})
	const n = 200
	rs := enqueueN(t, tr, topic, 0, 1)
	<-inFlight // the lone write was sent without waiting for more
	rs = append(rs, enqueueN(t, tr, topic, 1, n-1)...)
	close(release)
	awaitAll(t, rs)
	if got := first.Load(); got != 1 {
		t.Errorf("first request carried %d records, want 1 (sent at once)", got)
	}
	if got := requests.Load(); got != 2 {
		t.Errorf("%d produce requests for %d writes, want 2 (the first alone, the rest batched)", got, n)
	}
	got := readValues(t, c.ListenAddrs(), topic, n)
	for i, v := range got {
		if v != i {
			t.Fatalf("record %d is %d: out of order", i, v)
		}
	}
}

// TestProducerRetriesBeforeQueuedWrites: every other produce request fails
// with a retriable error, the first of them while the other writes of the
// same key are queued behind it; they are sent only after it was retried
// and succeeded, so the partition keeps the order of the writes
// (duplicates aside).
func TestProducerRetriesBeforeQueuedWrites(t *testing.T) {
	c, tr, topic := producerCluster(t)
	release, inFlight := make(chan struct{}), make(chan struct{})
	var k atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		n := k.Add(1)
		if n == 1 {
			close(inFlight)
			<-release // the rest is queued behind this request, which fails
		}
		if n%2 == 1 {
			req := kr.(*kmsg.ProduceRequest)
			resp := req.ResponseKind().(*kmsg.ProduceResponse)
			for _, rt := range req.Topics {
				st := kmsg.NewProduceResponseTopic()
				st.Topic = rt.Topic
				for _, rp := range rt.Partitions {
					sp := kmsg.NewProduceResponseTopicPartition()
					sp.Partition = rp.Partition
					sp.ErrorCode = kerr.NotLeaderForPartition.Code
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			return resp, nil, true
		}
		return nil, nil, false
	})
	const n = 100
	rs := enqueueN(t, tr, topic, 0, 1)
	<-inFlight
	rs = append(rs, enqueueN(t, tr, topic, 1, n-1)...)
	close(release)
	awaitAll(t, rs)
	got := readValues(t, c.ListenAddrs(), topic, n)
	last := -1
	for i, v := range got {
		if v < last {
			t.Fatalf("record %d is %d after %d: reordered", i, v, last)
		}
		last = v
	}
	if last != n-1 {
		t.Fatalf("last record %d, want %d", last, n-1)
	}
}
