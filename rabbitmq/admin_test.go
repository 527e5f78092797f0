package rabbitmq

import (
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// TestRequestExpiration: a message sent with Expires (a request's
// deadline) is dropped by the broker once expired, unconsumed; one
// without stays.
func TestRequestExpiration(t *testing.T) {
	prefix := uniq(t)
	tr := openT(t, prefix, "")
	ctx := ctxT(t, 30*time.Second)
	q := transport.Queue(prefix + "rpc")
	if err := tr.Declare(ctx, q); err != nil {
		t.Fatal(err)
	}
	msgs := []*transport.Message{
		{ID: "expiring", Body: []byte("x"), Expires: time.Now().Add(300 * time.Millisecond)},
		{ID: "staying", Body: []byte("y")},
	}
	if err := tr.Send(ctx, q, msgs); err != nil {
		t.Fatal(err)
	}
	for {
		info, err := tr.Inspect(ctx, q, "")
		if err != nil {
			t.Fatal(err)
		}
		if info.Messages == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the expired message is still queued: %d messages", info.Messages)
		case <-time.After(100 * time.Millisecond): // waiting for the TTL to pass
		}
	}
	s, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := recvN(t, ctx, s, 1, true)
	if got[0].ID != "staying" {
		t.Errorf("received %q, want the message without expiry", got[0].ID)
	}
}

// TestConsumers: the consumer count (transport.ConsumerCounter) counts a
// subscription once Subscribe returns and none within moments of its
// Close; a missing queue is ErrNotFound.
func TestConsumers(t *testing.T) {
	prefix := uniq(t)
	tr := openT(t, prefix, "")
	ctx := ctxT(t, 30*time.Second)
	name := prefix + "svc.rpc"
	if _, err := tr.Consumers(ctx, name); !errors.Is(err, transport.ErrNotFound) {
		t.Fatalf("Consumers of a missing queue: %v, want ErrNotFound", err)
	}
	s, err := tr.Subscribe(ctx, transport.Queue(name), "", transport.SubscribeOptions{MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := tr.Consumers(ctx, name); err != nil || n != 1 {
		t.Errorf("Consumers while subscribed: %d, %v; want 1", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A quorum queue forgets a closed consumer asynchronously, within
	// moments.
	for {
		n, err := tr.Consumers(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Consumers after Close: still %d", n)
		case <-time.After(20 * time.Millisecond): // polling the broker's state
		}
	}
}
