package kafka

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
)

// producer writes records with acks=all through kafka-go's Client.Produce,
// with at most one produce request in flight per partition, the way
// franz-go's producer behaves: a record for an idle partition is sent at
// once (no linger), and the records that arrive for a partition while its
// request is in flight wait and leave together in the next request, so
// that batches fill up under load by themselves. A failed request is
// retried (with backoff) before anything queued behind it is sent, so
// retries never reorder a partition, hence a key.
//
// kafka-go's Writer cannot do this: it sends a batch only when it is full
// or its BatchTimeout expired, so a lone record always waits the timeout,
// and with a tiny timeout every Send becomes its own request, queued
// behind the one in flight instead of joining the next.
type producer struct {
	client   *kafkago.Client
	balancer kafkago.Balancer
	linger   time.Duration
	maxBytes int64 // of one produce request's records
	log      *slog.Logger

	mu     sync.RWMutex
	closed bool
	parts  map[topicPartition]*partitionQueue
	wg     sync.WaitGroup // flushers running

	idxMu sync.Mutex
	idx   []int // 0..n-1, the partition list balancers take
}

// Producer limits and retry policy (kafka-go's Writer defaults where they
// exist, as the adapter used before).
const (
	produceMaxRecords  = 10000
	produceMaxAttempts = 10
	produceBackoffMin  = 50 * time.Millisecond
	produceBackoffMax  = time.Second
	produceTimeout     = 10 * time.Second
	recordOverhead     = 64 // bytes counted per record beyond key, value and headers
)

type topicPartition struct {
	topic     string
	partition int32
}

// partitionQueue holds the chunks waiting for one partition; busy is true
// while a flusher goroutine sends them.
type partitionQueue struct {
	key   topicPartition
	mu    sync.Mutex
	queue []*chunk
	busy  bool
}

// chunk is the records of one write for one partition, in order.
type chunk struct {
	msgs  []kafkago.Message
	bytes int64
	res   *writeResult
}

// writeResult completes when every chunk of one write is acknowledged or
// failed; err is the first failure.
type writeResult struct {
	mu      sync.Mutex
	pending int
	err     error
	done    chan struct{}
}

func (r *writeResult) complete(err error) {
	r.mu.Lock()
	if err != nil && r.err == nil {
		r.err = err
	}
	r.pending--
	last := r.pending == 0
	r.mu.Unlock()
	if last {
		close(r.done)
	}
}

func newProducer(client *kafkago.Client, bal kafkago.Balancer, linger time.Duration, maxBytes int64, log *slog.Logger) *producer {
	return &producer{
		client:   client,
		balancer: bal,
		linger:   linger,
		maxBytes: maxBytes,
		log:      log,
		parts:    make(map[topicPartition]*partitionQueue),
	}
}

// write sends msgs, all to topic, and waits until the cluster acknowledged
// every one (acks=all) or one failed, or ctx ended (the records may then
// still be written). Records of one partition keep their order.
func (p *producer) write(ctx context.Context, topic string, msgs []kafkago.Message) error {
	n, err := p.partitions(ctx, topic)
	if err != nil {
		return err
	}
	parts := p.partitionList(n)
	// Group by partition, keeping order; most writes go to one partition.
	type group struct {
		partition int
		msgs      []kafkago.Message
	}
	first := p.balancer.Balance(msgs[0], parts...)
	var groups []group
	if allSame(p.balancer, msgs[1:], first, parts) {
		groups = []group{{first, msgs}}
	} else {
		for i := range msgs {
			pt := p.balancer.Balance(msgs[i], parts...)
			j := 0
			for j < len(groups) && groups[j].partition != pt {
				j++
			}
			if j == len(groups) {
				groups = append(groups, group{partition: pt})
			}
			groups[j].msgs = append(groups[j].msgs, msgs[i])
		}
	}
	res := &writeResult{done: make(chan struct{})}
	type queued struct {
		key topicPartition
		c   *chunk
	}
	var out []queued
	for _, g := range groups {
		key := topicPartition{topic: topic, partition: int32(g.partition)}
		var size int64
		for i := range g.msgs {
			size += recordSize(&g.msgs[i])
		}
		if size <= p.maxBytes && len(g.msgs) <= produceMaxRecords {
			out = append(out, queued{key, &chunk{msgs: g.msgs, bytes: size, res: res}})
			continue
		}
		c := &chunk{res: res}
		for i := range g.msgs {
			sz := recordSize(&g.msgs[i])
			if len(c.msgs) > 0 && (c.bytes+sz > p.maxBytes || len(c.msgs) >= produceMaxRecords) {
				out = append(out, queued{key, c})
				c = &chunk{res: res}
			}
			c.msgs = append(c.msgs, g.msgs[i])
			c.bytes += sz
		}
		out = append(out, queued{key, c})
	}
	res.pending = len(out)
	for i, q := range out {
		if err := p.enqueue(q.key, q.c); err != nil {
			for range out[i:] { // closed: fail what was not enqueued
				res.complete(err)
			}
			return err
		}
	}
	select {
	case <-res.done:
		return res.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// allSame reports whether every message of msgs balances to partition pt
// (so that a write can go to one partition without copying).
func allSame(bal kafkago.Balancer, msgs []kafkago.Message, pt int, parts []int) bool {
	for i := range msgs {
		if bal.Balance(msgs[i], parts...) != pt {
			return false
		}
	}
	return true
}

// enqueue adds c to its partition's queue and starts a flusher if the
// partition is idle.
func (p *producer) enqueue(key topicPartition, c *chunk) error {
	p.mu.RLock()
	q := p.parts[key]
	if q == nil {
		p.mu.RUnlock()
		p.mu.Lock()
		if q = p.parts[key]; q == nil && !p.closed {
			q = &partitionQueue{key: key}
			p.parts[key] = q
		}
		p.mu.Unlock()
		p.mu.RLock()
	}
	defer p.mu.RUnlock()
	if p.closed {
		return io.ErrClosedPipe
	}
	q.mu.Lock()
	q.queue = append(q.queue, c)
	start := !q.busy
	q.busy = true
	q.mu.Unlock()
	if start {
		p.wg.Add(1) // under p.mu (read): close waits after it sets closed
		go p.flush(q)
	}
	return nil
}

// flush sends q's chunks, as many as fit in one request at a time, until
// q is empty.
func (p *producer) flush(q *partitionQueue) {
	defer p.wg.Done()
	for {
		if p.linger > 0 {
			time.Sleep(p.linger)
		}
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.busy = false
			q.queue = nil
			q.mu.Unlock()
			return
		}
		k, records, size := 0, 0, int64(0)
		for k < len(q.queue) {
			c := q.queue[k]
			if k > 0 && (size+c.bytes > p.maxBytes || records+len(c.msgs) > produceMaxRecords) {
				break
			}
			size += c.bytes
			records += len(c.msgs)
			k++
		}
		batch := q.queue[:k:k]
		q.queue = q.queue[k:]
		q.mu.Unlock()
		err := p.produce(q.key, batch)
		for _, c := range batch {
			c.res.complete(err)
		}
	}
}

// produce sends the chunks' records in one produce request, retrying
// errors the cluster may recover from (a leader moving, a connection
// lost) with backoff, as kafka-go's Writer does.
func (p *producer) produce(key topicPartition, batch []*chunk) error {
	var err error
	for attempt := 0; attempt < produceMaxAttempts; attempt++ {
		if attempt > 0 {
			delay := produceBackoffMin << (attempt - 1)
			if delay > produceBackoffMax || delay <= 0 {
				delay = produceBackoffMax
			}
			p.log.Debug("kafka: produce: backing off", "topic", key.topic, "partition", key.partition, "delay", delay, "err", err)
			time.Sleep(delay)
		}
		ctx, cancel := context.WithTimeout(context.Background(), produceTimeout)
		var res *kafkago.ProduceResponse
		res, err = p.client.Produce(ctx, &kafkago.ProduceRequest{
			Topic:        key.topic,
			Partition:    int(key.partition),
			RequiredAcks: kafkago.RequireAll,
			Records:      &chunkRecords{chunks: batch},
		})
		cancel()
		if err == nil && res != nil {
			err = res.Error
		}
		if err == nil {
			return nil
		}
		if !retriable(err) {
			return err
		}
	}
	return err
}

// retriable is kafka-go's Writer's rule: a temporary Kafka error or a
// transient network error.
func retriable(err error) bool {
	var te interface{ Temporary() bool }
	if errors.As(err, &te) && te.Temporary() {
		return true
	}
	return isUnavailable(err)
}

// partitions returns the partition count of topic from kafka-go's
// metadata cache (asking the cluster when the topic is missing from it).
func (p *producer) partitions(ctx context.Context, topic string) (int, error) {
	r, err := p.client.Transport.RoundTrip(ctx, p.client.Addr, &metadataAPI.Request{
		TopicNames: []string{topic}, AllowAutoTopicCreation: true,
	})
	if err != nil {
		return 0, err
	}
	for _, tp := range r.(*metadataAPI.Response).Topics {
		if tp.Name == topic {
			if tp.ErrorCode != 0 {
				return 0, kafkago.Error(tp.ErrorCode)
			}
			if len(tp.Partitions) == 0 {
				return 0, kafkago.UnknownTopicOrPartition
			}
			return len(tp.Partitions), nil
		}
	}
	return 0, kafkago.UnknownTopicOrPartition
}

// partitionList returns [0, n).
func (p *producer) partitionList(n int) []int {
	p.idxMu.Lock()
	defer p.idxMu.Unlock()
	if len(p.idx) < n {
		p.idx = make([]int, n)
		for i := range p.idx {
			p.idx[i] = i
		}
	}
	return p.idx[:n:n]
}

// close waits for the records already queued to be sent (or to fail);
// writes after it fail with io.ErrClosedPipe.
func (p *producer) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

func recordSize(m *kafkago.Message) int64 {
	n := int64(len(m.Key) + len(m.Value) + recordOverhead)
	for _, h := range m.Headers {
		n += int64(len(h.Key) + len(h.Value) + 8)
	}
	return n
}

// chunkRecords reads the records of a batch of chunks, in order
// (kafka.RecordReader); a new one is made for each attempt.
type chunkRecords struct {
	chunks []*chunk
	c, i   int
	record kafkago.Record
	key    bytesReadCloser
	value  bytesReadCloser
}

func (r *chunkRecords) ReadRecord() (*kafkago.Record, error) {
	for r.c < len(r.chunks) {
		msgs := r.chunks[r.c].msgs
		if r.i >= len(msgs) {
			r.c, r.i = r.c+1, 0
			continue
		}
		m := &msgs[r.i]
		r.i++
		r.record = kafkago.Record{Time: m.Time, Headers: m.Headers}
		if m.Key != nil {
			r.key.Reset(m.Key)
			r.record.Key = &r.key
		}
		if m.Value != nil {
			r.value.Reset(m.Value)
			r.record.Value = &r.value
		}
		return &r.record, nil
	}
	return nil, io.EOF
}

type bytesReadCloser struct{ bytes.Reader }

func (*bytesReadCloser) Close() error { return nil }
