package conformance

import (
	"context"
	"fmt"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// brokerEventCases are the BrokerEvents cases: what the broker does on its own: consumer cancels and rebalances.
var brokerEventCases = []testCase{
	{"BrokerEvents", "ConsumerCancelled", brokerEventsConsumerCancelled},
	{"BrokerEvents", "Rebalance", brokerEventsRebalance},
}

// brokerEventsConsumerCancelled proves R73: when the broker cancels the
// consumers of a group on its own (Harness.CancelConsumers: a deleted
// queue, a rebalance), the subscription never hangs silently: it sets
// itself up again and goes on receiving what is published afterwards, or
// it stops with an error (Done closes, Err is set).
func brokerEventsConsumerCancelled(e *env) {
	if e.h.CancelConsumers == nil {
		e.Fatalf("conformance: Harness.CancelConsumers is nil: every adapter must say what a broker-side cancel is")
	}
	topic, group := e.name("t"), e.name("g")
	c := e.client()
	r := &recorder{}
	sub := e.subscribe(c, topic, group, r.handle)
	e.publish(c, topic, msg("k", "before"))
	e.awaitBodies(r, "before")
	if err := e.h.CancelConsumers(e.ctx, topic, group); err != nil {
		e.Fatalf("CancelConsumers: %v", err)
	}
	// What is published while the group is being set up again may be
	// lost with a deleted queue: probe until a whole round arrives.
	if !e.awaitFlowing(c, topic, r.has, r.C, sub.Done()) {
		if sub.Err() == nil {
			e.Fatalf("the subscription stopped after the broker cancelled its consumer, without an error")
		}
		e.Logf("the subscription stopped with %v", sub.Err())
		return
	}
	want := seq("after", 10)
	var batch []*messaging.Message
	for _, b := range want {
		batch = append(batch, msg("k", b))
	}
	e.publish(c, topic, batch...)
	e.awaitBodies(r, want...)
}

// awaitFlowing publishes rounds of probes, each with many keys (so that
// every partition of a partitioned group gets some), until every probe of
// one round has arrived: the group is set up again. It returns false if
// stopped closes first. arrived reports whether a body was handled;
// changed returns a channel closed at the next handling.
func (e *env) awaitFlowing(c *messaging.Client, topic string, arrived func(string) bool, changed func() <-chan struct{}, stopped <-chan struct{}) bool {
	e.Helper()
	const keys = 32
	var rounds [][]string
	complete := func() bool {
	round:
		for _, r := range rounds {
			for _, b := range r {
				if !arrived(b) {
					continue round
				}
			}
			return true
		}
		return false
	}
	for i := 0; ; i++ {
		var batch []*messaging.Message
		var bodies []string
		for k := range keys {
			b := fmt.Sprintf("q%d-%d/0", i, k)
			bodies = append(bodies, b)
			batch = append(batch, msg(fmt.Sprintf("q%d-%d", i, k), b))
		}
		rounds = append(rounds, bodies)
		e.publish(c, topic, batch...)
		t := time.NewTimer(500 * time.Millisecond) // how long one round is given before the next
		for !complete() {
			ch := changed()
			if complete() {
				break
			}
			select {
			case <-ch:
				continue
			case <-t.C:
			case <-stopped:
				t.Stop()
				return false
			case <-e.ctx.Done():
				t.Stop()
				e.Fatalf("the group never received again after the broker event (%s)", CaseTimeout)
			}
			break
		}
		t.Stop()
		if complete() {
			return true
		}
	}
}

// brokerEventsRebalance proves R74: while the broker moves a group's
// messages between members on its own (Harness.CancelConsumers during the
// flow: a rebalance, a cancelled consumer) and members join and leave,
// keyed messages keep their rules: each key one at a time across the
// members, in publication order, nothing lost that was published after the
// group was set up again.
func brokerEventsRebalance(e *env) {
	if e.h.CancelConsumers == nil {
		e.Fatalf("conformance: Harness.CancelConsumers is nil: every adapter must say what a broker-side cancel is")
	}
	topic, group := e.name("t"), e.name("g")
	pub := e.client()
	keys := []string{"k0", "k1", "k2", "k3"}
	w := newKeyWatch()
	a := e.client()
	e.subscribe(a, topic, group, w.handler("a", time.Millisecond), messaging.WithMaxInFlight(8))
	e.publish(pub, topic, keyed(keys, 0, 20)...)
	w.awaitAll(e, len(keys)*10)
	b := e.client()
	e.subscribe(b, topic, group, w.handler("b", time.Millisecond), messaging.WithMaxInFlight(8))
	w.awaitAll(e, len(keys)*20)
	if err := e.h.CancelConsumers(e.ctx, topic, group); err != nil {
		e.Fatalf("CancelConsumers: %v", err)
	}
	// Wait until the group is set up again: a round of probes gets through.
	e.awaitFlowing(pub, topic, w.handled, w.C, nil)
	later := keyed(keys, 20, 40)
	e.publish(pub, topic, later[:len(later)/2]...)
	w.awaitBodies(e, later[:len(later)/4])
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil { // a member leaves mid-stream
		e.Errorf("shutdown of a member: %v", err)
	}
	e.publish(pub, topic, later[len(later)/2:]...)
	w.awaitBodies(e, later)
	w.check(e)
}
