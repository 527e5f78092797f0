package inmem

import (
	"fmt"
	"testing"

	"github.com/switchboard-go/switchboard/transport"
)

// A key's hold (which member of the group its messages are in flight to)
// is dropped when the key's last message in flight is acknowledged: the
// holds map empties however many distinct keys went through.
func TestKeyHoldsFreedOnAck(t *testing.T) {
	b, err := NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	tr := b.Transport()
	defer tr.Close()
	ctx := t.Context()
	topic := transport.Topic("t")
	sub, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	const keys, perKey = 1000, 2
	var msgs []*transport.Message
	for r := range perKey {
		for k := range keys {
			msgs = append(msgs, &transport.Message{ID: fmt.Sprint(r, "-", k), Key: fmt.Sprint("k", k), Body: []byte("x")})
		}
	}
	if err := tr.Send(ctx, topic, msgs); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	q := b.topics["t"]["g"]
	b.mu.Unlock()
	for got := 0; got < len(msgs); {
		ms, err := sub.Receive(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		q.mu.Lock()
		held := len(q.holds)
		q.mu.Unlock()
		if held == 0 {
			t.Fatal("no key held while its messages are in flight")
		}
		ids := make([]any, len(ms))
		for i, m := range ms {
			ids[i] = m.AckID
		}
		if err := sub.Ack(ctx, ids); err != nil {
			t.Fatal(err)
		}
		got += len(ms)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := len(q.holds); n != 0 {
		t.Fatalf("%d key holds left after every message was acknowledged; want 0", n)
	}
}
