package messaging

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/transport"
)

// emulating is an in-memory transport that reports no native delay, so
// that package messaging emulates delays with a delay queue and its
// scheduler, as on Kafka, RabbitMQ and SQS. It counts the sends to delay
// queues.
type emulating struct {
	transport.Transport
	mu     sync.Mutex
	stored map[string]int // body -> sends to a delay queue
}

func (e *emulating) Capabilities() transport.Capabilities {
	c := e.Transport.Capabilities()
	c.MaxDelay = 0
	return c
}

func (e *emulating) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	for _, m := range msgs {
		if !m.DeliverAt.IsZero() {
			panic("a message with DeliverAt reached a transport without native delays")
		}
	}
	if strings.HasSuffix(to.Name, ".sb-delay") {
		e.mu.Lock()
		for _, m := range msgs {
			e.stored[string(m.Body)]++
		}
		e.mu.Unlock()
	}
	return e.Transport.Send(ctx, to, msgs)
}

func (e *emulating) sends(body string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stored[body]
}

// TestDelaySchedulerCyclesLongDelays: a message due later than the
// scheduler's hold goes back to the delay queue each time the hold runs
// out, and is forwarded when due, with its key, its due time and none of
// the delay queue's headers.
func TestDelaySchedulerCyclesLongDelays(t *testing.T) {
	old := delayHold
	delayHold = 200 * time.Millisecond
	defer func() { delayHold = old }()

	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	tr := &emulating{Transport: b.Transport(), stored: map[string]int{}}
	c, err := New(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	got := make(chan *Message, 2)
	if _, err := c.Subscribe(ctx, "t", "g", func(_ context.Context, m *Message) error {
		got <- m
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(time.Second)
	if err := c.Publish(ctx, "t", &Message{Key: "k", Body: []byte("later"), Headers: map[string]string{"a": "b"}, DeliverAt: due}); err != nil {
		t.Fatal(err)
	}
	var m *Message
	select {
	case m = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the delayed message never arrived")
	}
	if now := time.Now(); now.Before(due) {
		t.Errorf("handed over %v early", due.Sub(now))
	}
	if m.Key != "k" || !m.DeliverAt.Equal(due) || len(m.Headers) != 1 || m.Headers["a"] != "b" || len(m.reserved) != 1 {
		t.Errorf("forwarded message: key %q, DeliverAt %v (want %v), headers %v, reserved %v", m.Key, m.DeliverAt, due, m.Headers, m.reserved)
	}
	// Published once, then sent back after each 200 ms hold before its
	// due time (about 4 times in 1 s).
	if n := tr.sends("later"); n < 3 {
		t.Errorf("sent to the delay queue %d times; want the publish and at least 2 returns", n)
	}
}

// TestDelayEmulatedKeyOrderAndRestart: with the emulation, one key's
// messages are forwarded by due time, then publish order, and a consumer
// started after the due time still gets them (R118, R121).
func TestDelayEmulatedKeyOrderAndRestart(t *testing.T) {
	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	open := func() *Client {
		c, err := New(&emulating{Transport: b.Transport(), stored: map[string]int{}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := open()
	s, err := first.Subscribe(ctx, "t", "g", func(context.Context, *Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(300 * time.Millisecond)
	msgs := []*Message{
		{Key: "k", Body: []byte("c"), DeliverAt: base.Add(100 * time.Millisecond)},
		{Key: "k", Body: []byte("a"), DeliverAt: base},
		{Key: "k", Body: []byte("b"), DeliverAt: base},
	}
	if err := first.Publish(ctx, "t", msgs...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // what its scheduler held goes back
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(base.Add(200 * time.Millisecond))) // all due while nobody consumes
	next := open()
	defer next.Close()
	got := make(chan string, 3)
	if _, err := next.Subscribe(ctx, "t", "g", func(_ context.Context, m *Message) error {
		got <- string(m.Body)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var order []string
	for range 3 {
		select {
		case b := <-got:
			order = append(order, b)
		case <-time.After(30 * time.Second):
			t.Fatalf("got %v, then nothing", order)
		}
	}
	if strings.Join(order, "") != "abc" {
		t.Errorf("order %v, want a b c (due time, then publish order)", order)
	}
}

// TestDelaySchedulerThinsFullHold (D1, R116): behind more delayed
// messages due in an hour than a scheduler holds (delayCapacity), a
// message due in 300 ms is still forwarded: the full hold sends its
// messages due latest back to the delay queue and receives the others,
// and nothing due in the hour is forwarded early.
func TestDelaySchedulerThinsFullHold(t *testing.T) {
	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	tr := &emulating{Transport: b.Transport(), stored: map[string]int{}}
	c, err := New(tr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	got := make(chan string, 16)
	if _, err := c.Subscribe(ctx, "t", "g", func(_ context.Context, m *Message) error {
		got <- string(m.Body)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	const far = 2*delayCapacity + delayEvictMax // three rounds of thinning
	later := time.Now().Add(time.Hour)
	msgs := make([]*Message, far)
	for i := range msgs {
		msgs[i] = &Message{Body: []byte("far"), DeliverAt: later}
	}
	if err := c.Publish(ctx, "t", msgs...); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "t", &Message{Body: []byte("near"), DeliverAt: time.Now().Add(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-got:
		if body != "near" {
			t.Fatalf("got %q first; a message due in an hour was forwarded early", body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the message due in 300 ms never arrived behind a full hold of messages due in an hour")
	}
	if n := tr.sends("far"); n <= far {
		t.Errorf("%d sends of the far messages to the delay queue; want more than the %d publishes (the full hold sends some back)", n, far)
	}
}
