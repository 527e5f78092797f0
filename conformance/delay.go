package conformance

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// delayCases are the Delay cases: delayed delivery (R114–R124).
var delayCases = []testCase{
	{"Delay", "NotBeforeDue", delayNotBeforeDue},
	{"Delay", "DuePromptly", delayDuePromptly},
	{"Delay", "PastDueTime", delayPastDueTime},
	{"Delay", "OverMaximum", delayOverMaximum},
	{"Delay", "MaximumAccepted", delayMaximumAccepted},
	{"Delay", "SurvivesClientRestart", delaySurvivesClientRestart},
	{"Delay", "GroupsAtDueTime", delayGroupsAtDueTime},
	{"Delay", "KeyOrder", delayKeyOrder},
	{"Delay", "RetryOnceDue", delayRetryOnceDue},
	{"Delay", "DeadLetterOnceDue", delayDeadLetterOnceDue},
}

// caseDelay is how far ahead the cases' messages are due: long enough to
// tell early from on time, short enough to keep the suite fast.
const caseDelay = 2 * time.Second

// promptTolerance is how late after its due time a case accepts a delayed
// message (R116): loose on purpose; the bench measures the lateness.
const promptTolerance = 30 * time.Second

// arrival is a message and when a handler got it.
type arrival struct {
	m  *messaging.Message
	at time.Time
}

// clock records the messages a handler receives with their arrival times.
type clock struct {
	notifier
	mu  sync.Mutex
	got []arrival
}

func (c *clock) handle(_ context.Context, m *messaging.Message) error {
	c.mu.Lock()
	c.got = append(c.got, arrival{m, time.Now()})
	c.mu.Unlock()
	c.Notify()
	return nil
}

// await waits for the first arrival of body.
func (c *clock) await(e *env, body string) arrival {
	e.Helper()
	var a arrival
	e.waitUntil("message "+body, &c.notifier, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, g := range c.got {
			if string(g.m.Body) == body {
				a = g
				return true
			}
		}
		return false
	})
	return a
}

func (c *clock) messages() []*messaging.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*messaging.Message, len(c.got))
	for i, g := range c.got {
		out[i] = g.m
	}
	return out
}

// delayed returns a message with key and body due at due.
func delayed(key, body string, due time.Time) *messaging.Message {
	return &messaging.Message{Key: key, Body: []byte(body), DeliverAt: due}
}

// checkOnTime fails the case when a arrived before due or more than
// promptTolerance after it, or does not carry due as its DeliverAt.
func checkOnTime(e *env, a arrival, due time.Time) {
	e.Helper()
	if a.at.Before(due) {
		e.Errorf("%s: handed over %v before its due time", a.m.Body, due.Sub(a.at))
	}
	if late := a.at.Sub(due); late > promptTolerance {
		e.Errorf("%s: handed over %v after its due time; tolerance %v", a.m.Body, late, promptTolerance)
	}
	if !a.m.DeliverAt.Equal(due) {
		e.Errorf("%s: received DeliverAt %v, want the due time %v", a.m.Body, a.m.DeliverAt, due)
	}
}

// delayNotBeforeDue proves R114: a delayed message, published or
// notified, reaches no handler before its due time.
func delayNotBeforeDue(e *env) {
	topic, rcpt := e.name("t"), e.name("r")
	sub, pub := e.client(), e.client()
	ct, cr := &clock{}, &clock{}
	e.subscribe(sub, topic, "g", ct.handle)
	e.listen(sub, rcpt, cr.handle)
	due := time.Now().Add(caseDelay)
	e.publish(pub, topic, delayed("k", "pub", due))
	e.notify(pub, rcpt, delayed("k", "note", due))
	checkOnTime(e, ct.await(e, "pub"), due)
	checkOnTime(e, cr.await(e, "note"), due)
}

// delayDuePromptly proves R116: a delayed message is handed over promptly
// once due (within promptTolerance here; BENCHMARKS.md has the figures),
// and a long delay published first does not hold back a short one.
func delayDuePromptly(e *env) {
	topic := e.name("t")
	sub, pub := e.client(), e.client()
	c := &clock{}
	e.subscribe(sub, topic, "g", c.handle)
	long := time.Now().Add(time.Hour)
	due := time.Now().Add(caseDelay)
	e.publish(pub, topic, delayed("k1", "long", long), delayed("k2", "short", due))
	checkOnTime(e, c.await(e, "short"), due)
	for _, m := range c.messages() {
		if string(m.Body) == "long" {
			e.Errorf("the message due in an hour was handed over early")
		}
	}
}

// delayPastDueTime proves R117: a due time not after the send means now:
// the message is delivered at once, in publish order with undelayed
// messages of its key, and carries no DeliverAt.
func delayPastDueTime(e *env) {
	topic := e.name("t")
	sub, pub := e.client(), e.client()
	r := &recorder{}
	e.subscribe(sub, topic, "g", r.handle)
	past := time.Now().Add(-time.Hour)
	e.publish(pub, topic, msg("k", "m0"), delayed("k", "m1", past), msg("k", "m2"))
	e.awaitBodies(r, "m0", "m1", "m2")
	checkFirstSeenOrder(e, r.all(), []string{"m0", "m1", "m2"})
	for _, m := range r.all() {
		if !m.DeliverAt.IsZero() {
			e.Errorf("%s: DeliverAt %v, want zero for a message due at once", m.Body, m.DeliverAt)
		}
	}
}

// delayOverMaximum proves R115: a due time more than MaxDelay ahead fails
// with ErrInvalid naming the maximum, and the batch sends nothing;
// requests cannot be delayed.
func delayOverMaximum(e *env) {
	topic, rcpt := e.name("t"), e.name("r")
	sub, pub := e.client(), e.client()
	r := &recorder{}
	e.subscribe(sub, topic, "g", r.handle)
	e.listen(sub, rcpt, r.handle)
	over := time.Now().Add(messaging.MaxDelay + time.Minute)
	check := func(what string, err error) {
		e.Helper()
		e.mustErr(what, err, messaging.ErrInvalid)
		if err != nil && !strings.Contains(err.Error(), messaging.MaxDelay.String()) {
			e.Errorf("%s: error %q does not name the maximum %v", what, err, messaging.MaxDelay)
		}
	}
	check("Publish", pub.Publish(e.ctx, topic, msg("k", "ok0"), delayed("k", "over", over)))
	check("Notify", pub.Notify(e.ctx, rcpt, msg("k", "ok1"), delayed("k", "over", over)))
	_, err := pub.Request(e.ctx, e.name("svc"), delayed("", "req", time.Now().Add(time.Minute)))
	e.mustErr("Request with a future DeliverAt", err, messaging.ErrInvalid)
	e.publish(pub, topic, msg("k", "barrier"))
	e.notify(pub, rcpt, msg("k", "barrier2"))
	e.awaitBodies(r, "barrier", "barrier2")
	for _, b := range []string{"ok0", "ok1", "over"} {
		if r.has(b) {
			e.Errorf("%s was delivered from a batch that failed", b)
		}
	}
}

// delayMaximumAccepted proves R115's other side: a due time MaxDelay
// ahead is accepted, and not delivered early.
func delayMaximumAccepted(e *env) {
	topic, rcpt := e.name("t"), e.name("r")
	sub, pub := e.client(), e.client()
	r := &recorder{}
	e.subscribe(sub, topic, "g", r.handle)
	e.listen(sub, rcpt, r.handle)
	far := time.Now().Add(messaging.MaxDelay - time.Second)
	e.publish(pub, topic, delayed("k", "week", far))
	e.notify(pub, rcpt, delayed("k", "week2", far))
	e.publish(pub, topic, msg("k", "barrier"))
	e.notify(pub, rcpt, msg("k", "barrier2"))
	e.awaitBodies(r, "barrier", "barrier2")
	if r.has("week") || r.has("week2") {
		e.Errorf("a message due in 7 days was delivered now")
	}
}

// delaySurvivesClientRestart proves R118: a delayed message survives its
// producer exiting at once and its consumers restarting before it is
// due: the next consumer gets it, not before its due time.
func delaySurvivesClientRestart(e *env) {
	topic, rcpt := e.name("t"), e.name("r")
	first := e.client()
	// Should the due time pass while the first consumers close (a slow
	// broker), they hold what they get unacknowledged until their drain
	// deadline, and release it to the next consumer.
	hold := func(ctx context.Context, _ *messaging.Message) error { <-ctx.Done(); return ctx.Err() }
	s1 := e.subscribe(first, topic, "g", hold)
	l1 := e.listen(first, rcpt, hold)
	pub := e.client()
	due := time.Now().Add(caseDelay)
	e.publish(pub, topic, delayed("k", "pub", due))
	e.notify(pub, rcpt, delayed("k", "note", due))
	if err := pub.Close(); err != nil {
		e.Fatalf("close producer: %v", err)
	}
	for _, s := range []*messaging.Subscription{s1, l1} {
		if err := s.Close(); err != nil {
			e.Fatalf("close consumer: %v", err)
		}
	}
	if err := first.Close(); err != nil {
		e.Fatalf("close consumer client: %v", err)
	}
	next := e.client()
	c := &clock{}
	e.subscribe(next, topic, "g", c.handle)
	e.listen(next, rcpt, c.handle)
	for _, b := range []string{"pub", "note"} {
		a := c.await(e, b)
		if a.at.Before(due) {
			e.Errorf("%s: handed over %v before its due time", b, due.Sub(a.at))
		}
	}
}

// delayGroupsAtDueTime proves R119: a delayed message is published to the
// topic when due, so that a group declared after the Publish but before
// the due time receives it too.
func delayGroupsAtDueTime(e *env) {
	topic := e.name("t")
	sub, late, pub := e.client(), e.client(), e.client()
	c1, c2 := &clock{}, &clock{}
	e.subscribe(sub, topic, "g1", c1.handle)
	due := time.Now().Add(2 * caseDelay) // time for the second Subscribe
	start := time.Now()
	e.publish(pub, topic, delayed("k", "both", due))
	e.subscribe(late, topic, "g2", c2.handle)
	if !time.Now().Before(due) {
		e.Fatalf("publishing and subscribing took %v, past the due time: cannot tell", time.Since(start))
	}
	checkOnTime(e, c1.await(e, "both"), due)
	checkOnTime(e, c2.await(e, "both"), due)
}

// delayKeyOrder proves R121: a key's messages reach a group by due time,
// then publish order; a message without delay is due at its publish time.
func delayKeyOrder(e *env) {
	topic := e.name("t")
	sub, pub := e.client(), e.client()
	r := &recorder{}
	e.subscribe(sub, topic, "g", r.handle)
	start := time.Now()
	base := start.Add(2 * caseDelay) // time for the four publishes
	e.publish(pub, topic, delayed("k", "d+2", base.Add(2*time.Second)))
	e.publish(pub, topic, delayed("k", "d+0a", base))
	e.publish(pub, topic, delayed("k", "d+1", base.Add(time.Second)), delayed("k", "d+0b", base))
	e.publish(pub, topic, msg("k", "now"), delayed("k", "d+0c", base))
	if !time.Now().Before(base) {
		e.Fatalf("publishing took %v, past the due time: cannot tell", time.Since(start))
	}
	want := []string{"now", "d+0a", "d+0b", "d+0c", "d+1", "d+2"}
	e.awaitBodies(r, want...)
	checkFirstSeenOrder(e, r.all(), want)
}

// delayRetryOnceDue proves R120: once due, a delayed message's handler
// errors are retried as any message's, attempts counted from 1.
func delayRetryOnceDue(e *env) {
	topic := e.name("t")
	sub, pub := e.client(), e.client()
	c := &clock{}
	var mu sync.Mutex
	calls := 0
	e.subscribe(sub, topic, "g", func(ctx context.Context, m *messaging.Message) error {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			if m.Attempt != 1 {
				e.Errorf("first call: Attempt %d, want 1", m.Attempt)
			}
			return errors.New("first attempt fails")
		}
		return c.handle(ctx, m)
	})
	due := time.Now().Add(caseDelay)
	e.publish(pub, topic, delayed("k", "retry", due))
	a := c.await(e, "retry")
	checkOnTime(e, a, due)
	if a.m.Attempt != 2 {
		e.Errorf("second call: Attempt %d, want 2", a.m.Attempt)
	}
}

// delayDeadLetterOnceDue proves R120: once due, a delayed message whose
// handler keeps failing is dead-lettered after MaxAttempts, as any is.
func delayDeadLetterOnceDue(e *env) {
	topic := e.name("t")
	sub, pub, dlc := e.client(), e.client(), e.client()
	dl := e.listenDeadLetters(dlc, messaging.DeadLetterQueue(topic, "g"))
	var mu sync.Mutex
	var first time.Time
	e.subscribe(sub, topic, "g", func(_ context.Context, m *messaging.Message) error {
		mu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		mu.Unlock()
		return errors.New("always fails")
	})
	due := time.Now().Add(caseDelay)
	e.publish(pub, topic, delayed("k", "poison", due))
	d := dl.await(e, "poison")
	if d.LastAttempt != FastRetry.MaxAttempts {
		e.Errorf("dead letter after %d attempts, want %d", d.LastAttempt, FastRetry.MaxAttempts)
	}
	mu.Lock()
	defer mu.Unlock()
	if first.Before(due) {
		e.Errorf("first attempt %v before the due time", due.Sub(first))
	}
	if !d.Original.DeliverAt.Equal(due) {
		e.Errorf("dead letter's original DeliverAt %v, want %v", d.Original.DeliverAt, due)
	}
}
