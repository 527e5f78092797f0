package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// batchCases are the Batch cases: batch handlers (SubscribeBatch,
// ListenBatch; SEMANTICS.md R125–R135).
var batchCases = []testCase{
	{"Batch", "SizeFillsBatch", batchSize},
	{"Batch", "WaitHandsOverPartial", batchWait},
	{"Batch", "NeverEmpty", batchNeverEmpty},
	{"Batch", "ListenBatch", batchListen},
	{"Batch", "NilAcksAll", batchNilAcksAll},
	{"Batch", "ErrorRetriesWholeBatch", batchWholeRetry},
	{"Batch", "PartialFailureRetriesNamed", batchPartialFailure},
	{"Batch", "DeadLetterPerMessage", batchDeadLetterPerMessage},
	{"Batch", "KeyOrderAcrossBatches", batchKeyOrder},
	{"Batch", "MaxInFlightBound", batchMaxInFlight},
	{"Batch", "ShutdownMidBatchLosesNothing", batchShutdownMidBatch},
	{"Batch", "CrashLoopPerMessage", batchCrashLoop},
	{"Batch", "InvalidOptions", batchInvalidOptions},
}

// batchCall is one call of a batch handler, as seen by the handler.
type batchCall struct {
	bodies   []string
	keys     []string
	attempts []int
}

// batchLog records the calls of a batch handler and what each
// acknowledged.
type batchLog struct {
	notifier
	mu      sync.Mutex
	calls   []batchCall
	acked   map[string]int      // body -> times acknowledged
	ackSeq  map[string][]string // key -> bodies in order of first acknowledgement
	running int                 // messages in calls in progress
	maxRun  int
}

// handler returns a BatchHandler that records each call, runs fn (nil:
// succeed) and records what the result acknowledges.
func (l *batchLog) handler(fn func(ctx context.Context, msgs []*messaging.Message, call int) error) messaging.BatchHandler {
	return func(ctx context.Context, msgs []*messaging.Message) error {
		var c batchCall
		for _, m := range msgs {
			c.bodies = append(c.bodies, string(m.Body))
			c.keys = append(c.keys, m.Key)
			c.attempts = append(c.attempts, m.Attempt)
		}
		l.mu.Lock()
		n := len(l.calls)
		l.calls = append(l.calls, c)
		l.running += len(msgs)
		l.maxRun = max(l.maxRun, l.running)
		l.mu.Unlock()
		l.Notify()
		var err error
		if fn != nil {
			err = fn(ctx, msgs, n)
		}
		failed := map[*messaging.Message]bool{}
		var be *messaging.BatchError
		switch {
		case err == nil:
		case errors.As(err, &be):
			for _, f := range be.Failed {
				failed[f.Message] = true
			}
		default:
			for _, m := range msgs {
				failed[m] = true
			}
		}
		l.mu.Lock()
		if l.acked == nil {
			l.acked, l.ackSeq = map[string]int{}, map[string][]string{}
		}
		for _, m := range msgs {
			if failed[m] {
				continue
			}
			if l.acked[string(m.Body)] == 0 {
				l.ackSeq[m.Key] = append(l.ackSeq[m.Key], string(m.Body))
			}
			l.acked[string(m.Body)]++
		}
		l.running -= len(msgs)
		l.mu.Unlock()
		l.Notify()
		return err
	}
}

func (l *batchLog) snapshot() []batchCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// awaitAcked waits until every body of want was acknowledged by the
// handler (returned without naming it as failed).
func (e *env) awaitAcked(l *batchLog, want ...string) {
	e.Helper()
	e.waitUntil(fmt.Sprintf("%d messages handled", len(want)), &l.notifier, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, w := range want {
			if l.acked[w] == 0 {
				return false
			}
		}
		return true
	})
}

// subscribeBatch subscribes a batch handler or fails the case.
func (e *env) subscribeBatch(c *messaging.Client, topic, group string, h messaging.BatchHandler, opts ...messaging.SubscribeOption) *messaging.Subscription {
	e.Helper()
	s, err := c.SubscribeBatch(e.ctx, topic, group, h, opts...)
	if err != nil {
		e.Fatalf("SubscribeBatch(%s, %s): %v", topic, group, err)
	}
	return s
}

// ownKeys returns a message per body, each body its own key.
func ownKeys(bodies []string) []*messaging.Message {
	out := make([]*messaging.Message, len(bodies))
	for i, b := range bodies {
		out[i] = msg(b, b)
	}
	return out
}

// nothingRedelivered closes c, starts another member of group and checks,
// with a marker published afterwards, that it receives none of bodies:
// they were acknowledged.
func (e *env) nothingRedelivered(c, pub *messaging.Client, topic, group string, bodies []string) {
	e.Helper()
	if err := c.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}
	next := e.client()
	r := &recorder{}
	e.subscribe(next, topic, group, r.handle)
	e.publish(pub, topic, msg("marker", "marker"))
	for _, m := range e.before(r, "marker") {
		if slices.Contains(bodies, string(m.Body)) {
			e.Errorf("%q was delivered again after its batch acknowledged it", m.Body)
		}
	}
}

// R125: a batch is handed over as soon as it holds WithBatchSize messages.
func batchSize(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	l := &batchLog{}
	e.subscribeBatch(c, topic, group, l.handler(nil), messaging.WithBatchSize(5), messaging.WithBatchWait(time.Minute))
	want := seq("m", 20)
	e.publish(c, topic, ownKeys(want)...)
	e.awaitAcked(l, want...)
	seen := map[string]bool{}
	for _, call := range l.snapshot() {
		if len(seen) < len(want) && len(call.bodies) != 5 {
			e.Errorf("a batch of %d messages (%v) was handed over; want 5 (the wait is a minute)", len(call.bodies), call.bodies)
		}
		for _, b := range call.bodies {
			seen[b] = true
		}
	}
}

// R126: a batch that is not full is handed over when its wait passes.
func batchWait(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	l := &batchLog{}
	e.subscribeBatch(c, topic, group, l.handler(nil), messaging.WithBatchSize(50), messaging.WithMaxInFlight(50),
		messaging.WithBatchWait(100*time.Millisecond))
	want := seq("m", 3)
	e.publish(c, topic, ownKeys(want)...)
	e.awaitAcked(l, want...)
	for _, call := range l.snapshot() {
		if len(call.bodies) == 0 || len(call.bodies) > 3 {
			e.Errorf("batch of %d messages; want 1 to 3", len(call.bodies))
		}
	}
}

// R126: a batch is never empty, however often the wait passes with
// nothing received.
func batchNeverEmpty(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	l := &batchLog{}
	e.subscribeBatch(c, topic, group, l.handler(nil), messaging.WithBatchWait(time.Millisecond))
	for i := range 5 {
		b := fmt.Sprint("m", i)
		e.publish(c, topic, msg(b, b))
		e.awaitAcked(l, b)
	}
	for i, call := range l.snapshot() {
		if len(call.bodies) == 0 {
			e.Errorf("call %d of the batch handler got an empty batch", i)
		}
	}
}

// R125, R126: ListenBatch hands a recipient's notifications over in
// batches.
func batchListen(e *env) {
	c := e.client()
	rcpt := e.name("r")
	want := seq("n", 6)
	e.notify(c, rcpt, ownKeys(want)...) // before anyone listens
	l := &batchLog{}
	s, err := c.ListenBatch(e.ctx, rcpt, l.handler(nil), messaging.WithBatchSize(3), messaging.WithBatchWait(time.Minute))
	if err != nil {
		e.Fatalf("ListenBatch: %v", err)
	}
	defer s.Close()
	e.awaitAcked(l, want...)
	for _, call := range l.snapshot() {
		if len(call.bodies) != 3 {
			e.Errorf("a batch of %d notifications (%v); want 3", len(call.bodies), call.bodies)
		}
	}
}

// R127: nil acknowledges every message of the batch.
func batchNilAcksAll(e *env) {
	pub, c := e.client(), e.client()
	topic, group := e.name("t"), e.name("g")
	l := &batchLog{}
	e.subscribeBatch(c, topic, group, l.handler(nil), messaging.WithBatchSize(5), messaging.WithBatchWait(time.Minute))
	want := seq("m", 5)
	e.publish(pub, topic, ownKeys(want)...)
	e.awaitAcked(l, want...)
	e.nothingRedelivered(c, pub, topic, group, want)
}

// R128: an error fails the whole batch: every message is handled again,
// its Attempt one higher, in a batch of the failed messages.
func batchWholeRetry(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	l := &batchLog{}
	e.subscribeBatch(c, topic, group, l.handler(func(_ context.Context, msgs []*messaging.Message, _ int) error {
		for _, m := range msgs {
			if m.Attempt == 1 {
				return errors.New("bulk insert failed")
			}
		}
		return nil
	}), messaging.WithBatchSize(4), messaging.WithBatchWait(time.Minute))
	want := seq("m", 4)
	e.publish(c, topic, ownKeys(want)...)
	e.awaitAcked(l, want...)
	calls := l.snapshot()
	if len(calls) < 2 {
		e.Fatalf("%d calls; want 2", len(calls))
	}
	for i, call := range calls[:2] {
		got := slices.Sorted(slices.Values(call.bodies))
		if !slices.Equal(got, want) {
			e.Errorf("call %d got %v; want the whole batch %v", i+1, got, want)
		}
		for j, a := range call.attempts {
			if a != i+1 {
				e.Errorf("call %d: %s has Attempt %d; want %d", i+1, call.bodies[j], a, i+1)
			}
		}
	}
}

// R129: a *BatchError (here wrapped) fails only the messages it names:
// the others are acknowledged, the named ones are handled again, alone.
func batchPartialFailure(e *env) {
	pub, c := e.client(), e.client()
	topic, group := e.name("t"), e.name("g")
	l := &batchLog{}
	e.subscribeBatch(c, topic, group, l.handler(func(_ context.Context, msgs []*messaging.Message, call int) error {
		if call > 0 {
			return nil
		}
		var be messaging.BatchError
		for _, m := range msgs {
			if b := string(m.Body); b == "b" || b == "d" {
				be.Add(m, errors.New(b+" failed"))
			}
		}
		return fmt.Errorf("insert: %w", be.Err())
	}), messaging.WithBatchSize(4), messaging.WithBatchWait(time.Minute))
	want := []string{"a", "b", "c", "d"}
	e.publish(pub, topic, ownKeys(want)...)
	e.awaitAcked(l, want...)
	calls := l.snapshot()
	if len(calls) < 2 {
		e.Fatalf("%d calls; want 2", len(calls))
	}
	if got := slices.Sorted(slices.Values(calls[0].bodies)); !slices.Equal(got, want) {
		e.Errorf("first batch %v; want %v", got, want)
	}
	if got := slices.Sorted(slices.Values(calls[1].bodies)); !slices.Equal(got, []string{"b", "d"}) {
		e.Errorf("retried batch %v; want only the named messages [b d]", got)
	}
	for j, a := range calls[1].attempts {
		if a != 2 {
			e.Errorf("retried %s has Attempt %d; want 2", calls[1].bodies[j], a)
		}
	}
	e.nothingRedelivered(c, pub, topic, group, want)
}

// R130: each message of a batch keeps its own attempts and is
// dead-lettered on its own: after MaxAttempts, or at once when its error
// is Permanent, with the usual failure envelope; the others are
// acknowledged.
func batchDeadLetterPerMessage(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	dls := e.listenDeadLetters(c, messaging.DeadLetterQueue(topic, group))
	l := &batchLog{}
	e.subscribeBatch(c, topic, group, l.handler(func(_ context.Context, msgs []*messaging.Message, _ int) error {
		var be messaging.BatchError
		for _, m := range msgs {
			switch string(m.Body) {
			case "y":
				be.Add(m, errors.New("y broke"))
			case "z":
				be.Add(m, messaging.Permanent(errors.New("z is malformed")))
			}
		}
		return be.Err()
	}), messaging.WithBatchSize(3), messaging.WithBatchWait(time.Minute), messaging.WithMaxAttempts(3))
	e.publish(c, topic, ownKeys([]string{"x", "y", "z"})...)
	y := dls.await(e, "y")
	if y.LastAttempt != 3 || !strings.Contains(y.LastError, "y broke") || y.Permanent || y.ReceivedFrom != topic || y.Group != group {
		e.Errorf("dead letter of y: attempts %d, error %q, permanent %v, topic %q, group %q; want 3, \"y broke\", false, %q, %q",
			y.LastAttempt, y.LastError, y.Permanent, y.ReceivedFrom, y.Group, topic, group)
	}
	z := dls.await(e, "z")
	if z.LastAttempt != 1 || !z.Permanent || !strings.Contains(z.LastError, "z is malformed") {
		e.Errorf("dead letter of z: attempts %d, permanent %v, error %q; want 1, true, \"z is malformed\"", z.LastAttempt, z.Permanent, z.LastError)
	}
	e.awaitAcked(l, "x")
	var yAttempts []int
	for _, call := range l.snapshot() {
		for j, b := range call.bodies {
			switch b {
			case "y":
				yAttempts = append(yAttempts, call.attempts[j])
			case "x", "z":
				if call.attempts[j] != 1 {
					e.Errorf("%s handled again (attempt %d): only y is retried", b, call.attempts[j])
				}
			}
		}
	}
	if !slices.Equal(yAttempts, []int{1, 2, 3}) {
		e.Errorf("y handled with attempts %v; want [1 2 3]", yAttempts)
	}
}

// R131: per-key order holds within and across batches, through partial
// retries: a batch holds at most one message of a key, and a key's next
// message is handed over only once the one before it is settled.
func batchKeyOrder(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	const keys, per = 4, 12
	l := &batchLog{}
	e.subscribeBatch(c, topic, group, l.handler(func(_ context.Context, msgs []*messaging.Message, _ int) error {
		var be messaging.BatchError
		for _, m := range msgs {
			var k, i int
			fmt.Sscanf(string(m.Body), "k%d-%d", &k, &i)
			if i%4 == 1 && m.Attempt == 1 {
				be.Add(m, errors.New("transient"))
			}
		}
		return be.Err()
	}), messaging.WithBatchSize(5), messaging.WithBatchWait(20*time.Millisecond), messaging.WithMaxInFlight(32))
	var want []string
	for i := range per {
		var batch []*messaging.Message
		for k := range keys {
			b := fmt.Sprintf("k%d-%d", k, i)
			want = append(want, b)
			batch = append(batch, msg(fmt.Sprint("k", k), b))
		}
		e.publish(c, topic, batch...)
	}
	e.awaitAcked(l, want...)
	last := map[string]int{}
	for _, call := range l.snapshot() {
		if len(call.keys) != len(slices.Compact(slices.Sorted(slices.Values(call.keys)))) {
			e.Errorf("a batch holds two messages of one key: %v", call.bodies)
		}
		for _, b := range call.bodies {
			var k, i int
			fmt.Sscanf(b, "k%d-%d", &k, &i)
			key := fmt.Sprint("k", k)
			if p, ok := last[key]; ok && i < p {
				e.Errorf("%s handed over after %s-%d of its key", b, key, p)
			}
			last[key] = i
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range keys {
		key := fmt.Sprint("k", k)
		got := l.ackSeq[key]
		for i, b := range got {
			if b != fmt.Sprintf("%s-%d", key, i) {
				e.Errorf("key %s acknowledged in order %v", key, got)
				break
			}
		}
	}
}

// R132: MaxInFlight bounds the messages held in all, across the batches
// being handled and those filling up.
func batchMaxInFlight(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	l := &batchLog{}
	release := e.gate()
	e.subscribeBatch(c, topic, group, l.handler(func(ctx context.Context, _ []*messaging.Message, _ int) error {
		return release.wait(ctx)
	}), messaging.WithBatchSize(3), messaging.WithBatchWait(20*time.Millisecond), messaging.WithMaxInFlight(6))
	want := seq("m", 20)
	e.publish(c, topic, ownKeys(want)...)
	e.waitUntil("6 messages in batch handlers", &l.notifier, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.running >= 6
	})
	release.open()
	e.awaitAcked(l, want...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxRun > 6 {
		e.Errorf("%d messages were in batch handlers at once; MaxInFlight is 6", l.maxRun)
	}
}

// R133: a shutdown mid-batch loses nothing: the batch being handled
// finishes and is acknowledged, a batch waiting to retry and the messages
// not handed over are released, and the group's next member gets each of
// them once more (a graceful release counts one delivery, R59).
func batchShutdownMidBatch(e *env) {
	pub, c1 := e.client(), e.client()
	topic, group := e.name("t"), e.name("g")
	l1 := &batchLog{}
	started := make(chan struct{})
	slow := messaging.RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Minute}
	e.subscribeBatch(c1, topic, group, l1.handler(func(ctx context.Context, _ []*messaging.Message, call int) error {
		if call > 0 {
			return errors.New("fails, waits a minute to retry")
		}
		close(started)
		<-messaging.Draining(ctx) // finishes during the drain
		return nil
	}), messaging.WithBatchSize(4), messaging.WithBatchWait(50*time.Millisecond), messaging.WithMaxInFlight(8), messaging.WithRetry(slow))
	want := seq("m", 12)
	e.publish(pub, topic, ownKeys(want)...)
	e.await("the first batch", started)
	e.waitUntil("a second batch, failed", &l1.notifier, func() bool { return len(l1.snapshot()) >= 2 })
	if err := c1.Close(); err != nil {
		e.Errorf("Close during a batch: %v", err)
	}
	calls := l1.snapshot()
	first := calls[0].bodies
	failedOnce := map[string]bool{}
	for _, call := range calls[1:] {
		for _, b := range call.bodies {
			failedOnce[b] = true
		}
	}

	c2 := e.client()
	l2 := &batchLog{}
	e.subscribeBatch(c2, topic, group, l2.handler(nil), messaging.WithBatchWait(20*time.Millisecond))
	e.publish(pub, topic, msg("marker", "marker"))
	var rest []string
	for _, b := range want {
		if !slices.Contains(first, b) {
			rest = append(rest, b)
		}
	}
	e.awaitAcked(l2, append(rest, "marker")...)
	for _, call := range l2.snapshot() {
		for j, b := range call.bodies {
			if slices.Contains(first, b) {
				e.Errorf("%s was delivered again: its batch finished during the drain and was acknowledged", b)
			}
			if failedOnce[b] && call.attempts[j] != 2 {
				e.Errorf("%s, failed once then released at shutdown, has Attempt %d on the next member; want 2", b, call.attempts[j])
			}
		}
	}
}

// R134: the crash-loop rule holds per message: a message of a batch whose
// delivery is over MaxAttempts (its earlier members stopped without
// settling it) is dead-lettered without reaching the batch handler, and
// the other messages are handled.
func batchCrashLoop(e *env) {
	pub, c1 := e.client(), e.client()
	topic, group := e.name("t"), e.name("g")
	started := make(chan struct{})
	l1 := &batchLog{}
	e.subscribeBatch(c1, topic, group, l1.handler(func(ctx context.Context, _ []*messaging.Message, call int) error {
		if call == 0 {
			close(started)
		}
		<-messaging.Draining(ctx)
		return errors.New("stopped mid-batch") // released: the member is shutting down
	}), messaging.WithBatchSize(2), messaging.WithBatchWait(time.Minute), messaging.WithMaxAttempts(1))
	e.publish(pub, topic, ownKeys([]string{"a", "b"})...)
	e.await("the batch", started)
	if err := c1.Close(); err != nil {
		e.Errorf("Close: %v", err)
	}

	c2 := e.client()
	dls := e.listenDeadLetters(c2, messaging.DeadLetterQueue(topic, group))
	l2 := &batchLog{}
	e.subscribeBatch(c2, topic, group, l2.handler(nil), messaging.WithBatchWait(20*time.Millisecond), messaging.WithMaxAttempts(1))
	e.publish(pub, topic, msg("c", "c"))
	for _, b := range []string{"a", "b"} {
		dl := dls.await(e, b)
		if dl.LastAttempt != 1 || !strings.Contains(dl.LastError, "MaxAttempts") {
			e.Errorf("dead letter of %s: attempts %d, error %q; want 1 and a crash loop", b, dl.LastAttempt, dl.LastError)
		}
	}
	e.awaitAcked(l2, "c")
	for _, call := range l2.snapshot() {
		for _, b := range call.bodies {
			if b == "a" || b == "b" {
				e.Errorf("%s reached the batch handler of the next member; its delivery was over MaxAttempts", b)
			}
		}
	}
}

// R135: bad batch options are ErrInvalid, before anything is declared;
// zero options take the defaults.
func batchInvalidOptions(e *env) {
	c := e.client()
	topic, group := e.name("t"), e.name("g")
	h := func(context.Context, []*messaging.Message) error { return nil }
	for _, opts := range [][]messaging.SubscribeOption{
		{messaging.WithBatchSize(-1)},
		{messaging.WithMaxInFlight(4), messaging.WithBatchSize(5)},
		{messaging.WithBatchWait(-time.Second)},
		{nil},
	} {
		_, err := c.SubscribeBatch(e.ctx, topic, group, h, opts...)
		e.mustErr("SubscribeBatch with a bad option", err, messaging.ErrInvalid)
		_, err = c.ListenBatch(e.ctx, e.name("r"), h, opts...)
		e.mustErr("ListenBatch with a bad option", err, messaging.ErrInvalid)
	}
	_, err := c.SubscribeBatch(e.ctx, topic, group, nil)
	e.mustErr("SubscribeBatch with a nil handler", err, messaging.ErrInvalid)
	_, err = c.ListenBatch(e.ctx, e.name("r"), nil)
	e.mustErr("ListenBatch with a nil handler", err, messaging.ErrInvalid)
	l := &batchLog{}
	e.subscribeBatch(c, topic, group, l.handler(nil), messaging.WithBatchSize(0), messaging.WithBatchWait(0), messaging.WithMaxInFlight(3))
	want := seq("m", 3)
	e.publish(c, topic, ownKeys(want)...)
	e.awaitAcked(l, want...)
}
