package conformance

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"sync/atomic"

	"github.com/switchboard-go/switchboard/messaging"
)

// largeBodySize is the size of the large bodies of the suite:
// min(MaxMessageSize/2, 256 KiB).
func largeBodySize(c *messaging.Client) int {
	n := 256 << 10
	if max := c.Capabilities().MaxMessageSize; max > 0 && max/2 < n {
		n = max / 2
	}
	return n
}

// patterned returns n bytes that depend on seed.
func patterned(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

// pubSubRoundTrip100 proves R1 and R3: 100 published messages, with
// headers, binary, empty and large bodies, all reach the group with their
// bodies and headers intact.
func pubSubRoundTrip100(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	r := &recorder{}
	e.subscribe(c, topic, group, r.handle)

	large := largeBodySize(c)
	want := map[string]*messaging.Message{}
	var batch []*messaging.Message
	for i := range 100 {
		var body []byte
		switch {
		case i%25 == 0:
			body = nil // empty
		case i%25 == 1:
			body = patterned(large, i) // large
		case i%2 == 0:
			body = patterned(256, i) // binary, every byte value
		default:
			body = []byte(fmt.Sprintf("text %d é ✓", i))
		}
		m := &messaging.Message{
			ID:      fmt.Sprintf("%srt-%03d", e.base, i),
			Key:     fmt.Sprintf("k%d", i%10),
			Body:    body,
			Headers: map[string]string{"n": fmt.Sprint(i), "case": "round-trip", "unicode": "ünï ✓"},
		}
		want[m.ID] = m
		batch = append(batch, m)
		if len(batch) == 10 {
			e.publish(c, topic, batch...)
			batch = nil
		}
	}
	e.waitUntil("100 messages", &r.notifier, func() bool {
		seen := map[string]bool{}
		for _, m := range r.all() {
			seen[m.ID] = true
		}
		return len(seen) >= len(want)
	})
	for _, m := range r.all() {
		w, ok := want[m.ID]
		if !ok {
			e.Errorf("unexpected message %q", m.ID)
			continue
		}
		if !bytes.Equal(m.Body, w.Body) {
			e.Errorf("message %s: body of %d bytes differs from the %d sent", m.ID, len(m.Body), len(w.Body))
		}
		if !maps.Equal(m.Headers, w.Headers) {
			e.Errorf("message %s: headers %v, want %v", m.ID, m.Headers, w.Headers)
		}
		if m.Key != w.Key {
			e.Errorf("message %s: key %q, want %q", m.ID, m.Key, w.Key)
		}
	}
}

// pubSubTopicIsolation proves R2: a group receives only its own topic's
// messages. The message to topic X is consumed on X before a marker is
// published to Y; Y's group must see the marker and nothing from X.
func pubSubTopicIsolation(e *env) {
	c := e.client()
	x, y := e.name("x"), e.name("y")
	rx, ry := &recorder{}, &recorder{}
	e.subscribe(c, x, e.name("gx"), rx.handle)
	e.subscribe(c, y, e.name("gy"), ry.handle)
	e.publish(c, x, msg("k", "for-x"))
	e.awaitBodies(rx, "for-x")
	e.publish(c, y, msg("k", "marker-y"))
	e.awaitBodies(ry, "marker-y")
	if ry.has("for-x") {
		e.Errorf("group of topic %s received a message published to topic %s", y, x)
	}
	e.publish(c, x, msg("k", "marker-x"))
	e.awaitBodies(rx, "marker-x")
	if rx.has("marker-y") {
		e.Errorf("group of topic %s received a message published to topic %s", x, y)
	}
}

// pubSubFanOutTwoGroups proves R4: every group of a topic receives every
// message.
func pubSubFanOutTwoGroups(e *env) {
	c1, c2 := e.client(), e.client()
	topic := e.name("t")
	r1, r2 := &recorder{}, &recorder{}
	e.subscribe(c1, topic, e.name("g1"), r1.handle)
	e.subscribe(c2, topic, e.name("g2"), r2.handle)
	want := seq("m", 20)
	for i, b := range want {
		e.publish(c1, topic, msg(fmt.Sprint("k", i%4), b))
	}
	e.awaitBodies(r1, want...)
	e.awaitBodies(r2, want...)
}

// pubSubCompetingConsumers proves R5: the members of one group share its
// messages. Each consumer (MaxInFlight 1) holds its first message until the
// other has received one, so neither can take everything: both must
// receive some, and together they receive everything.
func pubSubCompetingConsumers(e *env) {
	ca, cb := e.client(), e.client()
	topic, group := e.name("t"), e.name("g")
	ra, rb := &recorder{}, &recorder{}
	var starved atomic.Bool
	holdFirst := func(self, other *recorder) messaging.Handler {
		var first atomic.Bool
		return func(ctx context.Context, m *messaging.Message) error {
			self.add(m)
			if !first.CompareAndSwap(false, true) {
				return nil
			}
			for { // hold the first message until the other has one
				ch := other.C()
				if len(other.all()) > 0 {
					return nil
				}
				select {
				case <-ch:
				case <-e.ctx.Done():
					starved.Store(true)
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
	e.subscribe(ca, topic, group, holdFirst(ra, rb), messaging.WithMaxInFlight(1))
	e.subscribe(cb, topic, group, holdFirst(rb, ra), messaging.WithMaxInFlight(1))
	want := seq("m", 20)
	var msgs []*messaging.Message
	for i, b := range want {
		msgs = append(msgs, msg(fmt.Sprint("k", i), b))
	}
	e.publish(ca, topic, msgs...)
	union := &notifier{}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // forward both recorders' signals
		for {
			// Take the channels before signalling: a message recorded
			// between a signal and the next C() is not missed.
			ca, cb := ra.C(), rb.C()
			union.Notify()
			select {
			case <-ca:
			case <-cb:
			case <-stop:
				return
			}
		}
	}()
	e.waitUntil("all messages across both consumers", union, func() bool {
		got := ra.bodies()
		for b, n := range rb.bodies() {
			got[b] += n
		}
		for _, w := range want {
			if got[w] == 0 {
				return false
			}
		}
		return true
	})
	if starved.Load() || len(ra.all()) == 0 || len(rb.all()) == 0 {
		e.Errorf("consumer A received %d and B %d messages: the group's messages were not shared", len(ra.all()), len(rb.all()))
	}
}

// pubSubDurableGroupWhileOffline proves R6: a group receives what was
// published while none of its consumers was connected.
func pubSubDurableGroupWhileOffline(e *env) {
	topic, group := e.name("t"), e.name("g")
	c1 := e.client()
	r1 := &recorder{}
	e.subscribe(c1, topic, group, r1.handle)
	e.publish(c1, topic, msg("k", "live"))
	e.awaitBodies(r1, "live")
	if err := c1.Close(); err != nil {
		e.Fatalf("close first consumer: %v", err)
	}
	pub := e.client()
	want := seq("offline", 10)
	for _, b := range want {
		e.publish(pub, topic, msg("k", b))
	}
	c2 := e.client()
	r2 := &recorder{}
	e.subscribe(c2, topic, group, r2.handle)
	e.awaitBodies(r2, want...)
}

// pubSubNewGroupSkipsEarlier proves R7: a group declared after a message
// was published does not receive it. The marker, published after the new
// group was declared with the same key, arrives; the earlier message must
// not come before it.
func pubSubNewGroupSkipsEarlier(e *env) {
	c := e.client()
	topic := e.name("t")
	old := &recorder{}
	e.subscribe(c, topic, e.name("g1"), old.handle)
	e.publish(c, topic, msg("k", "early"))
	e.awaitBodies(old, "early")
	r := &recorder{}
	e.subscribe(c, topic, e.name("g2"), r.handle)
	e.publish(c, topic, msg("k", "marker"))
	for _, m := range e.before(r, "marker") {
		e.Errorf("new group received %q, published before it was declared", m.Body)
	}
}

// pubSubBatchOrder proves R8: a batch, and batches sent one after the
// other by one publisher, reach the group in order for one key.
func pubSubBatchOrder(e *env) {
	c := e.client()
	topic := e.name("t")
	r := &recorder{}
	e.subscribe(c, topic, e.name("g"), r.handle)
	want := seq("m", 30)
	var batch []*messaging.Message
	for i, b := range want {
		batch = append(batch, msg("k", b))
		if i%10 == 9 {
			e.publish(c, topic, batch...)
			batch = nil
		}
	}
	e.awaitBodies(r, want...)
	checkFirstSeenOrder(e, r.all(), want)
}

// checkFirstSeenOrder checks that the first receipts of want's bodies come
// in want's order.
func checkFirstSeenOrder(e *env, got []*messaging.Message, want []string) {
	e.Helper()
	pos := map[string]int{}
	for i, w := range want {
		pos[w] = i
	}
	next := 0
	seen := map[string]bool{}
	for _, m := range got {
		b := string(m.Body)
		if seen[b] {
			continue
		}
		seen[b] = true
		p, ok := pos[b]
		if !ok {
			continue
		}
		if p != next {
			e.Errorf("order: received %q (#%d) when #%d was next", b, p, next)
			return
		}
		next++
	}
}
