package conformance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// attempts records the Attempt of every handler call, per body.
type attempts struct {
	notifier
	mu  sync.Mutex
	by  map[string][]int
	ids map[string]map[string]bool
}

func newAttempts() *attempts {
	return &attempts{by: map[string][]int{}, ids: map[string]map[string]bool{}}
}

func (a *attempts) add(m *messaging.Message) {
	a.mu.Lock()
	b := string(m.Body)
	a.by[b] = append(a.by[b], m.Attempt)
	if a.ids[b] == nil {
		a.ids[b] = map[string]bool{}
	}
	a.ids[b][m.ID] = true
	a.mu.Unlock()
	a.Notify()
}

func (a *attempts) of(body string) []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.by[body])
}

func (a *attempts) idsOf(body string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids[body])
}

// deliveryRedeliveryAttemptCount proves R22: a failed message is handled
// again with the same ID and an Attempt one higher, until it succeeds.
func deliveryRedeliveryAttemptCount(e *env) {
	c := e.client()
	topic := e.name("t")
	a := newAttempts()
	e.subscribe(c, topic, e.name("g"), func(_ context.Context, m *messaging.Message) error {
		a.add(m)
		if m.Attempt < 3 {
			return fmt.Errorf("failing attempt %d", m.Attempt)
		}
		return nil
	})
	e.publish(c, topic, msg("k", "retry-me"))
	e.waitUntil("the third attempt", &a.notifier, func() bool { return slices.Contains(a.of("retry-me"), 3) })
	got := a.of("retry-me")
	if !slices.Equal(got[:3], []int{1, 2, 3}) {
		e.Errorf("attempts %v, want 1, 2, 3", got)
	}
	if n := a.idsOf("retry-me"); n != 1 {
		e.Errorf("the message had %d different IDs across attempts, want 1", n)
	}
	// Success ends the retries: a marker with the same key comes after.
	e.publish(c, topic, msg("k", "marker"))
	e.waitUntil("the marker", &a.notifier, func() bool { return len(a.of("marker")) > 0 })
	if got := a.of("retry-me"); len(got) != 3 {
		e.Errorf("attempts %v: handled again after it succeeded", got)
	}
}

// deliveryDeadLetterAfterN proves R23 and R24: a message that keeps failing
// is dead-lettered after exactly MaxAttempts handler calls, with the
// failure envelope: topic, group, attempts, last error, first and last
// failure times, and the original message with its headers.
func deliveryDeadLetterAfterN(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	dls := e.listenDeadLetters(c, messaging.DeadLetterQueue(topic, group))
	a := newAttempts()
	const n = 4
	e.subscribe(c, topic, group, func(_ context.Context, m *messaging.Message) error {
		a.add(m)
		return fmt.Errorf("failure %d", m.Attempt)
	}, messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: n, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Multiplier: 2}))
	start := time.Now()
	orig := &messaging.Message{ID: e.name("poison"), Key: "k", Body: []byte("poison"), Type: "order.created", ContentType: "text/plain", Version: "3",
		Headers: map[string]string{"tenant": "t1", "trace": "abc"}}
	e.publish(c, topic, orig)
	dl := dls.await(e, "poison")
	end := time.Now()
	if dl.ReceivedFrom != topic || dl.Group != group {
		e.Errorf("envelope topic %q group %q, want %q %q", dl.ReceivedFrom, dl.Group, topic, group)
	}
	if dl.LastAttempt != n {
		e.Errorf("envelope attempts %d, want %d", dl.LastAttempt, n)
	}
	if dl.LastError != fmt.Sprintf("failure %d", n) {
		e.Errorf("envelope last error %q, want %q", dl.LastError, fmt.Sprintf("failure %d", n))
	}
	if dl.Permanent {
		e.Errorf("envelope says permanent")
	}
	if dl.FirstFailure.Before(start.Add(-time.Second)) || dl.LastFailure.After(end.Add(time.Second)) || dl.LastFailure.Before(dl.FirstFailure) {
		e.Errorf("failure times %v .. %v outside the case's %v .. %v or reversed", dl.FirstFailure, dl.LastFailure, start, end)
	}
	o := dl.Original
	if o.ID != orig.ID || o.Key != orig.Key || string(o.Body) != "poison" || o.Type != orig.Type || o.ContentType != orig.ContentType ||
		o.Version != orig.Version || !maps.Equal(o.Headers, orig.Headers) {
		e.Errorf("original %+v, want %+v", o, orig)
	}
	for k := range o.Headers {
		if strings.HasPrefix(strings.ToLower(k), messaging.ReservedHeaderPrefix) {
			e.Errorf("original carries reserved header %q", k)
		}
	}
	got := a.of("poison")
	if len(got) < n || !slices.Equal(got[:n], []int{1, 2, 3, 4}) {
		e.Errorf("attempts %v, want 1..%d", got, n)
	}
	// Dead-lettered means acknowledged: a marker with the same key comes
	// next, and the poison is not handled again before it.
	e.publish(c, topic, msg("k", "marker"))
	e.waitUntil("the marker", &a.notifier, func() bool { return len(a.of("marker")) > 0 })
	if got := a.of("poison"); len(got) != n {
		e.Errorf("handled %d times (%v), want exactly %d", len(got), got, n)
	}
}

// deliveryPermanentError proves R25: an error marked Permanent
// dead-letters the message at once, after one attempt.
func deliveryPermanentError(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	dls := e.listenDeadLetters(c, messaging.DeadLetterQueue(topic, group))
	a := newAttempts()
	e.subscribe(c, topic, group, func(_ context.Context, m *messaging.Message) error {
		a.add(m)
		if string(m.Body) == "bad" {
			return messaging.Permanent(errors.New("cannot parse"))
		}
		return nil
	})
	e.publish(c, topic, msg("k", "bad"), msg("k", "marker"))
	dl := dls.await(e, "bad")
	if dl.LastAttempt != 1 || !dl.Permanent || dl.LastError != "cannot parse" {
		e.Errorf("envelope attempts %d permanent %v error %q, want 1, true, %q", dl.LastAttempt, dl.Permanent, dl.LastError, "cannot parse")
	}
	e.waitUntil("the marker", &a.notifier, func() bool { return len(a.of("marker")) > 0 })
	if got := a.of("bad"); !slices.Equal(got, []int{1}) {
		e.Errorf("attempts %v, want only 1", got)
	}
	if !messaging.IsPermanent(fmt.Errorf("wrapped: %w", messaging.Permanent(errors.New("x")))) || messaging.Permanent(nil) != nil {
		e.Errorf("Permanent/IsPermanent do not wrap as documented")
	}
}

// deliveryPoisonDoesNotBlock proves R26: while a key's message is being
// retried, other keys go on; the key's next message waits until the
// poison is dead-lettered.
func deliveryPoisonDoesNotBlock(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	dls := e.listenDeadLetters(c, messaging.DeadLetterQueue(topic, group))
	const bCount = 10
	var bDone atomic.Int32
	bAll := make(chan struct{})
	var a1Calls atomic.Int32
	var problems []string
	var pmu sync.Mutex
	problem := func(format string, args ...any) {
		pmu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		pmu.Unlock()
	}
	a2Done := make(chan struct{})
	e.subscribe(c, topic, group, func(ctx context.Context, m *messaging.Message) error {
		switch b := string(m.Body); {
		case b == "A1":
			if a1Calls.Add(1) == 1 {
				// Fail the first attempt only once B has completed:
				// this deadlocks if A1 blocks key B.
				select {
				case <-bAll:
				case <-e.ctx.Done():
					problem("key B did not complete while A1 was being handled")
				case <-ctx.Done():
				}
			}
			return errors.New("poison")
		case b == "A2":
			if n := a1Calls.Load(); n < 4 {
				problem("A2 ran after %d attempts of A1, before A1 was dead-lettered", n)
			}
			close(a2Done)
			return nil
		case strings.HasPrefix(b, "B"):
			if bDone.Add(1) == bCount {
				close(bAll)
			}
			return nil
		}
		return nil
	}, messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 4, InitialBackoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Multiplier: 1}))
	msgs := []*messaging.Message{msg("A", "A1")}
	for i := range bCount {
		msgs = append(msgs, msg("B", fmt.Sprint("B", i)))
	}
	msgs = append(msgs, msg("A", "A2"))
	e.publish(c, topic, msgs...)
	dl := dls.await(e, "A1")
	if dl.LastAttempt != 4 {
		e.Errorf("A1 dead-lettered after %d attempts, want 4", dl.LastAttempt)
	}
	e.await("A2", a2Done)
	pmu.Lock()
	defer pmu.Unlock()
	for _, p := range problems {
		e.Error(p)
	}
}

// deliveryPerKeyOrder proves R27: with many keys handled concurrently,
// each key's messages are handled one at a time, in publication order.
func deliveryPerKeyOrder(e *env) {
	c := e.client()
	topic := e.name("t")
	const keys, per = 8, 25
	var mu sync.Mutex
	firstSeen := map[string][]int{} // key -> sequence numbers, first receipt
	seen := map[string]bool{}
	running := map[string]int{}
	var overlap atomic.Bool
	n := &notifier{}
	total := 0
	e.subscribe(c, topic, e.name("g"), func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		running[m.Key]++
		if running[m.Key] > 1 {
			overlap.Store(true)
		}
		if !seen[string(m.Body)] {
			seen[string(m.Body)] = true
			var s int
			fmt.Sscanf(string(m.Body), "%d", &s)
			firstSeen[m.Key] = append(firstSeen[m.Key], s)
			total++
		}
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond) // small random work
		mu.Lock()
		running[m.Key]--
		mu.Unlock()
		n.Notify()
		return nil
	}, messaging.WithMaxInFlight(32))
	for i := range per {
		var batch []*messaging.Message
		for k := range keys {
			batch = append(batch, msg(fmt.Sprint("key", k), fmt.Sprintf("%d key%d", i, k)))
		}
		e.publish(c, topic, batch...)
	}
	e.waitUntil("every message", n, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return total == keys*per
	})
	mu.Lock()
	defer mu.Unlock()
	for k, s := range firstSeen {
		if !slices.IsSorted(s) || len(s) != per {
			e.Errorf("key %s handled in order %v", k, s)
		}
	}
	if overlap.Load() {
		e.Errorf("two messages of one key were handled at the same time")
	}
}

// deliveryBackpressure proves R28: a subscription never runs more handlers
// at once than WithMaxInFlight allows, and still receives everything.
func deliveryBackpressure(e *env) {
	c := e.client()
	const limit = 3
	for _, ordering := range []bool{true, false} {
		tag := map[bool]string{true: "1", false: "0"}[ordering]
		topic := e.name("t" + tag)
		r := &recorder{}
		var cur, peak atomic.Int32
		e.subscribe(c, topic, e.name("g"+tag), func(ctx context.Context, m *messaging.Message) error {
			now := cur.Add(1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond) // small random work
			cur.Add(-1)
			return r.handle(ctx, m)
		}, messaging.WithMaxInFlight(limit), messaging.WithKeyOrdering(ordering))
		want := seq("m", 40)
		var msgs []*messaging.Message
		for i, b := range want {
			msgs = append(msgs, msg(fmt.Sprint("k", i), b))
		}
		e.publish(c, topic, msgs...)
		e.awaitBodies(r, want...)
		if p := peak.Load(); p > limit {
			e.Errorf("key ordering %v: %d handlers ran at once, over WithMaxInFlight(%d)", ordering, p, limit)
		}
	}
}

// deliveryPanicIsError proves R29: a handler's panic is a failed attempt:
// retried, and dead-lettered with the panic in the envelope.
func deliveryPanicIsError(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	dls := e.listenDeadLetters(c, messaging.DeadLetterQueue(topic, group))
	a := newAttempts()
	e.subscribe(c, topic, group, func(_ context.Context, m *messaging.Message) error {
		a.add(m)
		if string(m.Body) == "always" || m.Attempt == 1 {
			panic("handler boom")
		}
		return nil
	}, messaging.WithMaxAttempts(3))
	e.publish(c, topic, msg("k1", "once"), msg("k2", "always"))
	dl := dls.await(e, "always")
	if dl.LastAttempt != 3 || !strings.Contains(dl.LastError, "handler boom") {
		e.Errorf("envelope attempts %d error %q, want 3 and the panic", dl.LastAttempt, dl.LastError)
	}
	e.waitUntil("the retry of the message that panicked once", &a.notifier, func() bool { return slices.Contains(a.of("once"), 2) })
}

// deliveryDeadLetterQueueOption proves R30: WithDeadLetterQueue sends dead
// letters to the named queue.
func deliveryDeadLetterQueueOption(e *env) {
	c := e.client()
	topic, group, dlq := e.name("t"), e.name("g"), e.name("mydlq")
	dls := e.listenDeadLetters(c, dlq)
	e.subscribe(c, topic, group, func(context.Context, *messaging.Message) error {
		return messaging.Permanent(errors.New("nope"))
	}, messaging.WithDeadLetterQueue(dlq))
	e.publish(c, topic, msg("k", "x"))
	if dl := dls.await(e, "x"); dl.ReceivedFrom != topic || dl.Group != group {
		e.Errorf("envelope %+v", dl)
	}
}

// deliveryDeadLetterFromListen proves R23 for notifications: a
// recipient's failing notification is dead-lettered to
// DeadLetterQueue(recipient, "") with an empty group.
func deliveryDeadLetterFromListen(e *env) {
	c := e.client()
	rcpt := e.name("r")
	dls := e.listenDeadLetters(c, messaging.DeadLetterQueue(rcpt, ""))
	e.listen(c, rcpt, func(context.Context, *messaging.Message) error { return errors.New("no") }, messaging.WithMaxAttempts(2))
	e.notify(c, rcpt, msg("k", "x"))
	dl := dls.await(e, "x")
	if dl.ReceivedFrom != rcpt || dl.Group != "" || dl.LastAttempt != 2 || dl.LastError != "no" {
		e.Errorf("envelope %+v", dl)
	}
}

// deliveryRedrive proves R24: the Original of a dead letter, published
// again, is delivered like any message, without the failure envelope.
func deliveryRedrive(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	dls := e.listenDeadLetters(c, messaging.DeadLetterQueue(topic, group))
	var fixed atomic.Bool
	r := &recorder{}
	e.subscribe(c, topic, group, func(ctx context.Context, m *messaging.Message) error {
		if !fixed.Load() {
			return messaging.Permanent(errors.New("not yet"))
		}
		return r.handle(ctx, m)
	})
	e.publish(c, topic, &messaging.Message{Key: "k", Body: []byte("x"), Headers: map[string]string{"h": "v"}})
	dl := dls.await(e, "x")
	fixed.Store(true)
	e.publish(c, topic, dl.Original)
	e.awaitBodies(r, "x")
	m := r.all()[0]
	if m.Header("h") != "v" || len(m.Headers) != 1 || m.ID != dl.Original.ID {
		e.Errorf("redriven message %+v", m)
	}
	if _, err := messaging.ParseDeadLetter(m); !errors.Is(err, messaging.ErrInvalid) {
		e.Errorf("ParseDeadLetter of a redriven message: %v, want ErrInvalid", err)
	}
}
