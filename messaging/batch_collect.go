package messaging

import (
	"context"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/transport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// batcher collects a batch subscription's messages into batches and starts
// a goroutine (handleBatch) for each batch handed over.
//
// Per-key order: with key ordering on, a key is busy from the moment one
// of its messages joins a batch until that message is acknowledged or
// dead-lettered; the key's later messages wait in its lane, in order, and
// the next one joins a batch (the open one, or a new one) only then. So a
// batch holds at most one message of a key, and no retry, whole or
// partial, can put a key's messages out of order.
//
// Every message held (open batch, lanes, batches being handled) keeps the
// room it took in until it is settled or released, so
// MaxInFlight bounds them all.
type batcher struct {
	s    *Subscription
	h    BatchHandler
	size int
	wait time.Duration

	mu      sync.Mutex
	stopped bool                 // shutdown began: nothing more is handed over
	open    []*transport.Message // the batch filling up
	gen     uint64               // counts batches opened: a timer of an earlier one does nothing
	timer   *time.Timer          // hands the open batch over when its wait passes
	keys    map[string]*lane     // busy keys, with the messages waiting behind them
}

// newBatcher returns the batcher of s. It holds a count of s.handlers
// until shutdown begins, so that the batch goroutines it starts are always
// counted before Shutdown waits for them.
func newBatcher(s *Subscription) *batcher {
	o := s.o.batch.withDefaults(s.o.maxInFlight)
	b := &batcher{s: s, h: o.handler, size: o.size, wait: o.wait, keys: make(map[string]*lane)}
	s.handlers.Add(1)
	go func() {
		defer s.handlers.Done()
		<-s.drainCh
		b.stop()
	}()
	return b
}

func (b *batcher) keyed(tm *transport.Message) bool {
	return b.s.o.keyOrdering && tm.Key != ""
}

// add takes a message the subscription received (its room taken).
func (b *batcher) add(tm *transport.Message) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		b.s.release(tm)
		return
	}
	if b.keyed(tm) {
		if l, busy := b.keys[tm.Key]; busy {
			l.queue = append(l.queue, tm)
			b.handOverIfFullLocked()
			b.mu.Unlock()
			return
		}
		b.keys[tm.Key] = new(lane)
	}
	b.joinLocked(tm)
	b.handOverIfFullLocked()
	b.mu.Unlock()
}

// handOverIfFullLocked hands the open batch over, before it is full or
// its wait passed, when the subscription has no room left (MaxInFlight
// messages held): no message can join it until one is settled, and the
// messages waiting behind their keys would otherwise hold the open batch
// until its wait passed.
func (b *batcher) handOverIfFullLocked() {
	if len(b.open) > 0 && b.s.room.full() {
		b.handOverLocked()
	}
}

// joinLocked adds tm to the open batch, handing it over when full and
// starting its wait when it is the first.
func (b *batcher) joinLocked(tm *transport.Message) {
	b.open = append(b.open, tm)
	switch {
	case len(b.open) >= b.size:
		b.handOverLocked()
	case len(b.open) == 1:
		b.gen++
		gen := b.gen
		b.timer = time.AfterFunc(b.wait, func() { b.expire(gen) })
	}
}

// expire hands the open batch over when its wait passed.
func (b *batcher) expire(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped || gen != b.gen || len(b.open) == 0 {
		return
	}
	b.handOverLocked()
}

// handOverLocked starts the handling of the open batch. b.stopped is
// false, so newBatcher's count of s.handlers is still held.
func (b *batcher) handOverLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.gen++
	batch := b.open
	b.open = nil
	b.s.handlers.Add(1)
	go b.handleBatch(batch)
}

// next lets tm's key go on once tm is settled: the key's next message
// joins a batch, or the key is no longer busy.
func (b *batcher) next(tm *transport.Message) {
	if !b.keyed(tm) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l := b.keys[tm.Key]
	if l == nil || b.stopped {
		return // released at stop
	}
	if len(l.queue) == 0 {
		delete(b.keys, tm.Key)
		return
	}
	nxt := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	b.joinLocked(nxt)
	b.handOverIfFullLocked()
}

// stop hands nothing more over and releases what was not handed over: the
// open batch and the messages waiting behind their keys. The batches being
// handled finish on their own (handleBatch).
func (b *batcher) stop() {
	b.mu.Lock()
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	held := b.open
	b.open = nil
	for _, l := range b.keys {
		held = append(held, l.queue...)
	}
	b.keys = make(map[string]*lane)
	b.mu.Unlock()
	for _, tm := range held {
		b.s.release(tm)
	}
}

// startBatchProcess starts the span of one batch handler call: a consumer
// span "process <source>" with messaging.batch.message_count, linked to
// the context each message carries (the OpenTelemetry messaging
// conventions for batch processing).
func (t *telemetry) startBatchProcess(ctx context.Context, s *Subscription, items []*batchItem) (context.Context, trace.Span) {
	if t.tracer == nil {
		return ctx, nil
	}
	links := make([]trace.Link, 0, len(items))
	for _, it := range items {
		sc := trace.SpanContextFromContext(t.prop.Extract(context.Background(), headerCarrier(it.tm.Headers)))
		if sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	attrs := []attribute.KeyValue{
		t.system,
		attribute.String("messaging.destination.name", s.source),
		attribute.String("messaging.operation.type", "process"),
		attribute.String("messaging.operation.name", "process"),
		attribute.Int("messaging.batch.message_count", len(items)),
	}
	if s.group != "" {
		attrs = append(attrs, attribute.String("messaging.consumer.group.name", s.group))
	}
	return t.tracer.Start(ctx, "process "+s.source, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrs...), trace.WithLinks(links...))
}
