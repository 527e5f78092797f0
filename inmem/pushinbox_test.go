package inmem_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/transport"
)

// TestPushInbox: a reply sent to a push inbox reaches its deliver function
// before Send returns (no hand-off to a receive loop), as the broker's own
// copy; once the inbox is closed, replies to it are dropped and Receive
// reports ErrClosed.
func TestPushInbox(t *testing.T) {
	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	requester, responder := b.Transport(), b.Transport()
	defer requester.Close()
	defer responder.Close()
	ctx := context.Background()
	var mu sync.Mutex
	var got []*transport.Message
	in, err := requester.(transport.PushInboxOpener).OpenPushInbox(ctx, func(m *transport.Message) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	reply := &transport.Message{ID: "r1", CorrelationID: "c1", Body: []byte("re:x")}
	if err := responder.Send(ctx, transport.Reply(in.Address()), []*transport.Message{reply}); err != nil {
		t.Fatal(err)
	}
	reply.Body[0] = 'X' // the sender reuses its buffer
	mu.Lock()
	if len(got) != 1 || got[0].CorrelationID != "c1" || string(got[0].Body) != "re:x" {
		t.Errorf("delivered %d replies (%+v), want the one sent, with its own body", len(got), got)
	}
	mu.Unlock()

	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	if err := responder.Send(ctx, transport.Reply(in.Address()), []*transport.Message{{ID: "r2", CorrelationID: "c2"}}); err != nil {
		t.Errorf("Send to a closed inbox: %v, want nil (the reply is dropped)", err)
	}
	mu.Lock()
	if len(got) != 1 {
		t.Errorf("a reply sent after Close was delivered")
	}
	mu.Unlock()
	if _, err := in.Receive(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("Receive after Close: %v, want ErrClosed", err)
	}
	if _, err := requester.(transport.PushInboxOpener).OpenPushInbox(ctx, nil); !errors.Is(err, transport.ErrInvalid) {
		t.Errorf("OpenPushInbox(nil): %v, want ErrInvalid", err)
	}
}
