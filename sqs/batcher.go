package sqs

import (
	"context"
	"sync"
	"time"
)

// batcher coalesces concurrent per-receipt operations (deletes) into
// batch calls of up to 10 entries, group-commit style: a call that
// arrives while others are in flight joins the next batch instead of
// making its own request, and nothing waits for a timer. Users acking one
// message at a time from many goroutines get DeleteMessageBatch calls
// without thinking about it.
type batcher struct {
	// flush performs one batch call and returns the error of each failed
	// receipt.
	flush      func(ctx context.Context, receipts []string) map[string]error
	maxFlights int

	mu      sync.Mutex
	pending []batchItem
	flights int
	closed  bool // after wait: calls flush inline
	wg      sync.WaitGroup
}

type batchItem struct {
	receipt string
	req     *batchReq
}

type batchReq struct {
	mu        sync.Mutex
	remaining int
	err       error
	done      chan struct{}
}

// do runs the operation for receipts and returns the first error.
func (b *batcher) do(ctx context.Context, receipts []string) error {
	if len(receipts) == 0 {
		return nil
	}
	r := &batchReq{remaining: len(receipts), done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		for start := 0; start < len(receipts); start += maxBatch {
			for _, err := range b.flush(ctx, receipts[start:min(start+maxBatch, len(receipts))]) {
				return err
			}
		}
		return nil
	}
	for _, rh := range receipts {
		b.pending = append(b.pending, batchItem{rh, r})
	}
	for b.flights < b.maxFlights && b.flights*maxBatch < len(b.pending) {
		b.flights++
		b.wg.Go(b.run)
	}
	b.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher) run() {
	for {
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.flights--
			b.mu.Unlock()
			return
		}
		n := min(maxBatch, len(b.pending))
		items := make([]batchItem, n)
		copy(items, b.pending)
		b.pending = b.pending[n:]
		b.mu.Unlock()

		receipts := make([]string, n)
		for i, it := range items {
			receipts[i] = it.receipt
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		errs := b.flush(ctx, receipts)
		cancel()
		for _, it := range items {
			r := it.req
			r.mu.Lock()
			if err := errs[it.receipt]; err != nil && r.err == nil {
				r.err = err
			}
			r.remaining--
			if r.remaining == 0 {
				close(r.done)
			}
			r.mu.Unlock()
		}
	}
}

// wait waits for the batch calls under way; later calls flush inline.
func (b *batcher) wait() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}
