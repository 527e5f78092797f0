package messaging_test

import (
	"context"
	"testing"

	"github.com/switchboard-go/switchboard/messaging"
)

// BenchmarkInMemPublishConsume measures one message published and consumed
// through the in-memory transport: throughput and allocations per message.
func BenchmarkInMemPublishConsume(b *testing.B) {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{}, 1024)
	if _, err := c.Subscribe(ctx, "bench", "g", func(ctx context.Context, m *messaging.Message) error {
		done <- struct{}{}
		return nil
	}, messaging.WithKeyOrdering(false), messaging.WithMaxInFlight(256)); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			if err := c.Publish(ctx, "bench", &messaging.Message{Body: body}); err != nil {
				panic(err)
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		<-done
	}
}

// BenchmarkInMemRequestReply measures a request/reply round trip.
func BenchmarkInMemRequestReply(b *testing.B) {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Serve(ctx, "echo", func(ctx context.Context, m *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: m.Body}, nil
	}); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 128)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Request(ctx, "echo", &messaging.Message{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
}
