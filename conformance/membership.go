package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// membershipCases are the Membership cases: several members of one group: per-key order and one handler at a time per key across members joining and leaving.
var membershipCases = []testCase{
	{"Membership", "TwoMembersOneKeyOrder", membershipTwoMembersOneKey},
	{"Membership", "MembersJoinAndLeave", membershipJoinAndLeave},
	{"Membership", "KeysSpreadAcrossMembers", membershipKeysSpread},
}

// keyWatch checks, across every member of a group, that each key's
// messages are handled one at a time and, on their first handling, in
// publication order. Bodies are "<key>/<n>" with n counting from 0 per
// key; a redelivery of a message already handled is accepted
// (at-least-once), not counted as an inversion.
type keyWatch struct {
	notifier
	mu        sync.Mutex
	running   map[string]string // key -> member handling it now
	overlaps  []string
	inversion []string
	last      map[string]int            // key -> highest n handled
	seen      map[string]bool           // bodies handled
	by        map[string]map[string]int // member -> key -> messages handled first by it
	total     int
}

func newKeyWatch() *keyWatch {
	return &keyWatch{running: map[string]string{}, last: map[string]int{}, seen: map[string]bool{}, by: map[string]map[string]int{}}
}

// handler returns member's handler; work is how long each call takes (the
// handler's own work, not a synchronisation).
func (w *keyWatch) handler(member string, work time.Duration) messaging.Handler {
	return func(ctx context.Context, m *messaging.Message) error {
		w.begin(member, m)
		if work > 0 {
			t := time.NewTimer(work)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
		w.end(m)
		return nil
	}
}

func (w *keyWatch) begin(member string, m *messaging.Message) {
	body := string(m.Body)
	key, ns, _ := strings.Cut(body, "/")
	var n int
	fmt.Sscanf(ns, "%d", &n)
	w.mu.Lock()
	defer w.mu.Unlock()
	if other, busy := w.running[key]; busy {
		w.overlaps = append(w.overlaps, fmt.Sprintf("%s on %s while %s had %s", body, member, other, key))
	}
	w.running[key] = member
	if !w.seen[body] {
		w.seen[body] = true
		w.total++
		if last, ok := w.last[key]; ok && n < last {
			w.inversion = append(w.inversion, fmt.Sprintf("%s on %s after %s/%d", body, member, key, last))
		}
		w.last[key] = max(w.last[key], n)
		if w.by[member] == nil {
			w.by[member] = map[string]int{}
		}
		w.by[member][key]++
	}
}

func (w *keyWatch) end(m *messaging.Message) {
	key, _, _ := strings.Cut(string(m.Body), "/")
	w.mu.Lock()
	delete(w.running, key)
	w.mu.Unlock()
	w.Notify()
}

func (w *keyWatch) handled(body string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen[body]
}

func (w *keyWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total
}

// members returns how many keys each member handled messages of.
func (w *keyWatch) members() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for m, keys := range w.by {
		out[m] = len(keys)
	}
	return out
}

// check fails the case on any overlap or inversion. On a transport that
// does not order by key (Capabilities.OrderedByKey false: an opt-in mode
// such as SQS standard queues, which relaxes R70-R72) it only logs them:
// the rest of the case (nothing lost) still holds.
func (w *keyWatch) check(e *env) {
	e.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !e.orderedByKey() {
		e.Logf("transport does not order by key (opt-in relaxed mode): %d overlaps and %d inversions across members, not asserted",
			len(w.overlaps), len(w.inversion))
		return
	}
	if len(w.overlaps) > 0 {
		e.Errorf("%d times two members (or two handlers) ran one key at once, e.g. %s", len(w.overlaps), w.overlaps[0])
	}
	if len(w.inversion) > 0 {
		e.Errorf("%d messages handled out of their key's order, e.g. %s", len(w.inversion), w.inversion[0])
	}
}

// awaitAll waits until n distinct messages were handled.
func (w *keyWatch) awaitAll(e *env, n int) {
	e.Helper()
	e.waitUntil(fmt.Sprintf("%d messages", n), &w.notifier, func() bool { return w.count() >= n })
}

// awaitBodies waits until every message of msgs was handled.
func (w *keyWatch) awaitBodies(e *env, msgs []*messaging.Message) {
	e.Helper()
	e.waitUntil(fmt.Sprintf("%d messages", len(msgs)), &w.notifier, func() bool {
		for _, m := range msgs {
			if !w.handled(string(m.Body)) {
				return false
			}
		}
		return true
	})
}

// keyed returns the messages <key>/<from> … <key>/<to-1> of each key,
// interleaved.
func keyed(keys []string, from, to int) []*messaging.Message {
	var out []*messaging.Message
	for n := from; n < to; n++ {
		for _, k := range keys {
			out = append(out, msg(k, fmt.Sprintf("%s/%d", k, n)))
		}
	}
	return out
}

// membershipTwoMembersOneKey proves R70: two members of one group, 200
// messages of one key published in one batch, a handler that takes a few
// milliseconds: the key's messages are handled one at a time across both
// members, in publication order.
func membershipTwoMembersOneKey(e *env) {
	topic, group := e.name("t"), e.name("g")
	pub, a, b := e.client(), e.client(), e.client()
	w := newKeyWatch()
	e.subscribe(a, topic, group, w.handler("a", 2*time.Millisecond))
	e.subscribe(b, topic, group, w.handler("b", 2*time.Millisecond))
	const n = 200
	e.publish(pub, topic, keyed([]string{"k"}, 0, n)...)
	w.awaitAll(e, n)
	w.check(e)
}

// membershipJoinAndLeave proves R71: while members join and leave a group
// mid-stream (gracefully), several keys flow: each key's messages are
// handled one at a time across all members, in publication order, and
// none is lost.
func membershipJoinAndLeave(e *env) {
	topic, group := e.name("t"), e.name("g")
	pub := e.client()
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	const per = 15 // messages per key per phase
	w := newKeyWatch()
	const work = time.Millisecond
	join := func(name string) *messaging.Client {
		c := e.client()
		e.subscribe(c, topic, group, w.handler(name, work), messaging.WithMaxInFlight(8))
		return c
	}
	shut := func(c *messaging.Client) {
		ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		if err := c.Shutdown(ctx); err != nil {
			e.Errorf("shutdown of a member: %v", err)
		}
	}
	a := join("a")
	e.publish(pub, topic, keyed(keys, 0, per)...)
	w.awaitAll(e, len(keys)*per/3)
	b := join("b") // joins mid-stream
	e.publish(pub, topic, keyed(keys, per, 2*per)...)
	w.awaitAll(e, len(keys)*per)
	shut(a) // leaves mid-stream
	c := join("c")
	e.publish(pub, topic, keyed(keys, 2*per, 3*per)...)
	w.awaitAll(e, len(keys)*2*per+len(keys)*per/2)
	shut(b)
	e.publish(pub, topic, keyed(keys, 3*per, 4*per)...)
	w.awaitAll(e, len(keys)*4*per)
	_ = c
	w.check(e)
}

// membershipKeysSpread proves R72: the keys of a group spread across its
// members: with two members and many keys flowing, both members handle
// some keys (once the broker has balanced the group), and one key never
// runs on both at once. Rounds of messages are published until both
// members have handled some.
func membershipKeysSpread(e *env) {
	topic, group := e.name("t"), e.name("g")
	pub, a, b := e.client(), e.client(), e.client()
	w := newKeyWatch()
	e.subscribe(a, topic, group, w.handler("a", time.Millisecond), messaging.WithMaxInFlight(4))
	e.subscribe(b, topic, group, w.handler("b", time.Millisecond), messaging.WithMaxInFlight(4))
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	const per = 5
	for round := 0; ; round++ {
		batch := keyed(keys, round*per, (round+1)*per)
		e.publish(pub, topic, batch...)
		w.awaitBodies(e, batch)
		if got := w.members(); got["a"] > 0 && got["b"] > 0 {
			break
		}
	}
	w.check(e)
	var spread []string
	for m, n := range w.members() {
		spread = append(spread, fmt.Sprintf("%s:%d", m, n))
	}
	slices.Sort(spread)
	e.Logf("keys per member: %v", spread)
}

// orderedByKey reports the Capabilities.OrderedByKey of the harness's
// transports.
func (e *env) orderedByKey() bool {
	e.Helper()
	tr, err := e.h.Open(e.ctx)
	if err != nil {
		e.Fatalf("open transport: %v", err)
	}
	defer tr.Close()
	return tr.Capabilities().OrderedByKey
}
