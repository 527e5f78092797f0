package messaging_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// TestInMemAckedBatchBodiesCollectable: the in-memory broker allocates the entries
// of one Publish call in one slab, and an acknowledged entry keeps its
// message (Body included). While one message of a batch is still held
// (here: retrying, its handler failing), the bodies of every other message
// of the batch, all acknowledged, must be collectable.
//
//	go test -count=1 -run 'TestInMemAckedBatchBodiesCollectable' ./messaging
func TestInMemAckedBatchBodiesCollectable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://?max_message_size=2097152")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n, size = 64, 1 << 20
	var acked atomic.Int64
	allAcked := make(chan struct{})
	failing := make(chan struct{}, 1)
	sub, err := c.Subscribe(ctx, "big", "g", func(_ context.Context, m *messaging.Message) error {
		if m.Key == "hold" {
			select {
			case failing <- struct{}{}:
			default:
			}
			return fmt.Errorf("keep it held")
		}
		if acked.Add(1) == n-1 {
			close(allAcked)
		}
		return nil
	}, messaging.WithMaxInFlight(n), messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 100, InitialBackoff: time.Hour, MaxBackoff: time.Hour, Multiplier: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = sub.Shutdown(sctx)
	}()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	func() {
		msgs := make([]*messaging.Message, n)
		for i := range msgs {
			msgs[i] = &messaging.Message{Body: make([]byte, size)}
		}
		msgs[0].Key = "hold"
		if err := c.Publish(ctx, "big", msgs...); err != nil {
			t.Fatal(err)
		}
	}()
	<-failing
	select {
	case <-allAcked:
	case <-ctx.Done():
		t.Fatal("not all acknowledged")
	}
	var after runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew by %d MiB with 1 of %d 1 MiB messages held", grown>>20, n)
	if grown > 16<<20 {
		t.Errorf("heap holds %d MiB after %d of %d 1 MiB messages were acknowledged: the held message's slab keeps every body of its Publish call alive", grown>>20, n-1, n)
	}
}
