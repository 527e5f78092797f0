package harness

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
)

// BenchmarkGroupMembers measures what one more member of a consumer group
// brings (SEMANTICS.md R70-R72): keyed messages (64 keys) through one
// group of 1 or 2 members on one in-memory broker, with key ordering on
// and a handler that works 200µs (sleeping, so that members overlap even
// on few cores). Per-key order holds across members (key affinity), so the
// second member can take only keys the first has not in flight; msgs/s
// shows how much of the ideal 2× that leaves.
//
//	go test -run '^$' -bench GroupMembers ./harness/
func BenchmarkGroupMembers(b *testing.B) {
	for _, members := range []int{1, 2} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			br, err := inmem.NewBroker()
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var handled atomic.Int64
			done := make(chan struct{}, 1)
			var want atomic.Int64
			h := func(context.Context, *messaging.Message) error {
				time.Sleep(200 * time.Microsecond)
				if handled.Add(1) == want.Load() {
					done <- struct{}{}
				}
				return nil
			}
			var clients []*messaging.Client
			for range members {
				c, err := messaging.New(br.Transport())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Subscribe(ctx, "t", "g", h, messaging.WithMaxInFlight(16)); err != nil {
					b.Fatal(err)
				}
				clients = append(clients, c)
			}
			pub, err := messaging.New(br.Transport())
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close()
			msgs := make([]*messaging.Message, 64)
			for i := range msgs {
				msgs[i] = &messaging.Message{Key: fmt.Sprint("k", i), Body: body}
			}
			want.Store(int64(b.N))
			b.ResetTimer()
			start := time.Now()
			for sent := 0; sent < b.N; sent += len(msgs) {
				if err := pub.Publish(ctx, "t", msgs[:min(len(msgs), b.N-sent)]...); err != nil {
					b.Fatal(err)
				}
			}
			<-done
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
