// Package conformance is the shared conformance suite of Switchboard: the
// behaviour every transport must give package messaging, whatever the
// broker. Every adapter's tests call Run with a Harness that reaches one
// broker:
//
//	func TestConformance(t *testing.T) {
//		b, _ := inmem.NewBroker()
//		conformance.Run(t, conformance.Harness{
//			Name: "inmem",
//			Open: func(context.Context) (transport.Transport, error) { return b.Transport(), nil },
//		})
//	}
//
// The rules the cases prove are numbered in SEMANTICS.md at the root of the module; each case's doc
// comment names its rule.
//
// The cases are written for real brokers: they never assume that anything
// is immediate, never sleep to synchronise (they wait for signals, bounded
// by a per-case deadline), prove negative assertions with barrier messages
// and accept the duplicates that at-least-once delivery allows, except
// where duplicates are what a case is about.
package conformance

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// Harness tells the suite how to reach one broker.
type Harness struct {
	Name string // "inmem", "kafka", "rabbitmq", "sqs"
	// Open returns a NEW transport connected to the SAME broker as every
	// other transport this harness opened.
	Open func(ctx context.Context) (transport.Transport, error)
	// Teardown, optional, deletes everything whose name starts with
	// prefix.
	Teardown func(ctx context.Context, prefix string) error
	// OpenDialer returns a new transport, as Open does, whose every
	// connection to the broker is opened with dial. The Faults cases use
	// it to cut connections, add latency and stall reads. Every network
	// adapter sets it; a transport without connections (inmem) leaves it
	// nil, and the suite then injects the same faults around the
	// transport.
	OpenDialer func(ctx context.Context, dial DialFunc) (transport.Transport, error)
	// CancelConsumers makes the broker act on its own against the
	// consumers of one consumer group (topic and group as given to
	// Subscribe), as it does in production: RabbitMQ deletes the group's
	// queues (the broker cancels their consumers), SQS deletes the group's
	// queue, Kafka rebalances the group (another member joins and
	// leaves), the in-memory broker deletes the group's queue. The
	// BrokerEvents cases need it: every adapter sets it.
	CancelConsumers func(ctx context.Context, topic, group string) error
}

// CaseTimeout bounds every case: each waits for its signals at most this
// long.
const CaseTimeout = 60 * time.Second

// FastRetry is the retry policy the suite's clients use by default, so that
// retries and dead-lettering happen quickly.
var FastRetry = messaging.RetryPolicy{
	MaxAttempts:    5,
	InitialBackoff: 10 * time.Millisecond,
	MaxBackoff:     40 * time.Millisecond,
	Multiplier:     2,
	Jitter:         0.1,
}

// testCase is one conformance case.
type testCase struct {
	area, name string
	fn         func(e *env)
}

// cases lists every case, in the order they run: the base families, then
// each later family from its own file.
var cases = slices.Concat(baseCases, membershipCases, handoverCases, crashLoopCases,
	brokerEventCases, wireCases, adminCases, healthCases, delayCases, batchCases)

// baseCases are the families of version 0.1.
var baseCases = []testCase{
	{"PubSub", "RoundTrip100", pubSubRoundTrip100},
	{"PubSub", "TopicIsolation", pubSubTopicIsolation},
	{"PubSub", "FanOutTwoGroups", pubSubFanOutTwoGroups},
	{"PubSub", "CompetingConsumers", pubSubCompetingConsumers},
	{"PubSub", "DurableGroupWhileOffline", pubSubDurableGroupWhileOffline},
	{"PubSub", "NewGroupSkipsEarlierMessages", pubSubNewGroupSkipsEarlier},
	{"PubSub", "BatchOrder", pubSubBatchOrder},

	{"Notify", "BeforeRecipientExists", notifyBeforeRecipientExists},
	{"Notify", "SharedByListeners", notifySharedByListeners},
	{"Notify", "HeldWhileListenerOffline", notifyHeldWhileListenerOffline},

	{"Request", "Success", requestSuccess},
	{"Request", "Timeout", requestTimeout},
	{"Request", "ResponderError", requestResponderError},
	{"Request", "ResponderPanic", requestResponderPanic},
	{"Request", "Concurrent500", requestConcurrent500},
	{"Request", "LateReplyDropped", requestLateReplyDropped},
	{"Request", "NoResponders", requestNoResponders},
	{"Request", "NoRespondersOnceStopped", requestNoRespondersOnceStopped},

	{"AsyncRequest", "Future", asyncFuture},
	{"AsyncRequest", "Handler", asyncHandler},
	{"AsyncRequest", "Cancel", asyncCancel},
	{"AsyncRequest", "ContextCancel", asyncContextCancel},

	{"ScatterGather", "ThreeResponders", gatherThreeResponders},
	{"ScatterGather", "SlowResponderPastDeadline", gatherSlowResponder},
	{"ScatterGather", "NoResponders", gatherNoResponders},
	{"ScatterGather", "ResponderErrors", gatherResponderErrors},

	{"Delivery", "RedeliveryAttemptCount", deliveryRedeliveryAttemptCount},
	{"Delivery", "DeadLetterAfterNAttempts", deliveryDeadLetterAfterN},
	{"Delivery", "PermanentError", deliveryPermanentError},
	{"Delivery", "PoisonDoesNotBlockOtherKeys", deliveryPoisonDoesNotBlock},
	{"Delivery", "PerKeyOrder", deliveryPerKeyOrder},
	{"Delivery", "Backpressure", deliveryBackpressure},
	{"Delivery", "PanicIsError", deliveryPanicIsError},
	{"Delivery", "DeadLetterQueueOption", deliveryDeadLetterQueueOption},
	{"Delivery", "DeadLetterFromListen", deliveryDeadLetterFromListen},
	{"Delivery", "RedriveDeadLetter", deliveryRedrive},

	{"Lifecycle", "CloseIdempotent", lifecycleCloseIdempotent},
	{"Lifecycle", "CallsAfterCloseErrClosed", lifecycleCallsAfterClose},
	{"Lifecycle", "ShutdownDrainsInFlight", lifecycleShutdownDrains},
	{"Lifecycle", "ShutdownDeadlineReleases", lifecycleShutdownDeadline},
	{"Lifecycle", "NothingLostAcrossRestartOfConsumer", lifecycleNothingLost},
	{"Lifecycle", "PendingRequestFailsOnClose", lifecyclePendingRequest},
	{"Lifecycle", "SubscriptionClose", lifecycleSubscriptionClose},

	{"Context", "Publish", ctxPublish},
	{"Context", "Notify", ctxNotify},
	{"Context", "Subscribe", ctxSubscribe},
	{"Context", "Listen", ctxListen},
	{"Context", "Serve", ctxServe},
	{"Context", "Respond", ctxRespond},
	{"Context", "Request", ctxRequest},
	{"Context", "RequestAsync", ctxRequestAsync},
	{"Context", "Gather", ctxGather},
	{"Context", "RequestCancelledWhileWaiting", ctxRequestWhileWaiting},
	{"Context", "GatherCancelledWhileWaiting", ctxGatherWhileWaiting},

	{"BadInput", "EmptyNames", badEmptyNames},
	{"BadInput", "InvalidNames", badInvalidNames},
	{"BadInput", "NilHandler", badNilHandler},
	{"BadInput", "NilMessage", badNilMessage},
	{"BadInput", "ReservedHeader", badReservedHeader},
	{"BadInput", "InvalidHeaderNameOrValue", badInvalidHeader},
	{"BadInput", "HugeHeaders", badHugeHeaders},
	{"BadInput", "MessageTooLarge", badMessageTooLarge},
	{"BadInput", "InvalidOptions", badInvalidOptions},
	{"BadInput", "ErrorTextOnce", badErrorTextOnce},
	{"BadInput", "InvalidBatchSendsNothing", badInvalidBatch},

	{"Message", "Headers", messageHeaders},
	{"Message", "BinaryBody", messageBinaryBody},
	{"Message", "EmptyBody", messageEmptyBody},
	{"Message", "LargeBody", messageLargeBody},
	{"Message", "AllFields", messageAllFields},
	{"Message", "GeneratedIDAndTime", messageGeneratedIDAndTime},
	{"Message", "FieldsViaNotify", messageFieldsViaNotify},
	{"Message", "RequestReplyFields", messageRequestReplyFields},

	{"Duplicates", "PublishedTwice", duplicatesPublishedTwice},
	{"Duplicates", "RedeliveredAfterLostAck", duplicatesRedeliveredAfterLostAck},

	{"Versioning", "Upgrade", versioningUpgrade},
	{"Versioning", "BadMessagesDeadLettered", versioningBadMessagesDeadLettered},

	{"Breaker", "HandlerPauses", breakerHandlerPauses},
	{"Breaker", "SendFailsFast", breakerSendFailsFast},

	{"Tracing", "PublishToConsumer", tracingPublishToConsumer},
	{"Tracing", "RequestReply", tracingRequestReply},

	{"Faults", "CutDuringPublish", faultsCutDuringPublish},
	{"Faults", "CutDuringConsume", faultsCutDuringConsume},
	{"Faults", "CutDuringRequest", faultsCutDuringRequest},
	{"Faults", "Latency", faultsLatency},
	{"Faults", "StallReads", faultsStallReads},
}

// Run runs every conformance case against the broker h reaches, as
// subtests named <Area>/<Case>. Each Run uses its own name prefix, so Run
// may be called repeatedly against one broker; Teardown, when set, is
// called with that prefix at the end.
func Run(t *testing.T, h Harness) {
	if h.Open == nil {
		t.Fatal("conformance: Harness.Open is nil")
	}
	prefix := "sbt-" + randomID(6) + "-"
	t.Logf("conformance: %s: names start with %q", h.Name, prefix)
	if h.Teardown != nil {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), CaseTimeout)
			defer cancel()
			if err := h.Teardown(ctx, prefix); err != nil {
				t.Errorf("conformance: teardown of %s: %v", prefix, err)
			}
		})
	}
	byArea := map[string][]int{}
	var areas []string
	for i, c := range cases {
		if _, ok := byArea[c.area]; !ok {
			areas = append(areas, c.area)
		}
		byArea[c.area] = append(byArea[c.area], i)
	}
	for _, area := range areas {
		t.Run(area, func(t *testing.T) {
			for _, i := range byArea[area] {
				c := cases[i]
				t.Run(c.name, func(t *testing.T) {
					e := newEnv(t, h, fmt.Sprintf("%s%02d%s-", prefix, i, shortTag(c.name)))
					c.fn(e)
				})
			}
		})
	}
}

// shortTag returns up to 6 lower-case letters and digits of name.
func shortTag(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if b.Len() == 6 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// env is what a case works with: the test, its deadline and its names.
type env struct {
	*testing.T
	h    Harness
	ctx  context.Context // the case's deadline
	base string          // every name of the case starts with it
}

func newEnv(t *testing.T, h Harness, base string) *env {
	ctx, cancel := context.WithTimeout(context.Background(), CaseTimeout)
	t.Cleanup(cancel) // registered first, so it runs last
	return &env{T: t, h: h, ctx: ctx, base: base}
}

// name returns the case's name for part, for example "sbt-x1y2z3-04compet-t".
// Names stay under 27 characters, so that derived names (a dead-letter
// queue "<topic>.<group>.dlq") stay under 60.
func (e *env) name(part string) string {
	if len(part) > 6 {
		e.Fatalf("conformance: name part %q is longer than 6 characters", part)
	}
	return e.base + part
}

// clientOpts are the options of every client of the suite.
func clientOpts(extra ...messaging.ClientOption) []messaging.ClientOption {
	return append([]messaging.ClientOption{
		messaging.WithDrainTimeout(5 * time.Second),
		messaging.WithRequestTimeout(30 * time.Second),
		messaging.WithSubscribeDefaults(messaging.WithRetry(FastRetry)),
	}, extra...)
}

// transport opens a new transport, closed at cleanup.
func (e *env) transport() transport.Transport {
	e.Helper()
	tr, err := e.h.Open(e.ctx)
	if err != nil {
		e.Fatalf("open transport: %v", err)
	}
	e.Cleanup(func() { tr.Close() })
	return tr
}

// client returns a new client on a new transport, closed at cleanup.
func (e *env) client(opts ...messaging.ClientOption) *messaging.Client {
	e.Helper()
	tr, err := e.h.Open(e.ctx)
	if err != nil {
		e.Fatalf("open transport: %v", err)
	}
	c, err := messaging.New(tr, clientOpts(opts...)...)
	if err != nil {
		tr.Close()
		e.Fatalf("messaging.New: %v", err)
	}
	e.Cleanup(func() {
		if err := c.Close(); err != nil {
			e.Logf("close client: %v", err)
		}
	})
	return c
}

// gate returns a gate that cleanup opens: create it after the clients whose
// handlers wait on it, so that it opens before they close.
func (e *env) gate() *gate {
	g := &gate{ch: make(chan struct{})}
	e.Cleanup(g.open)
	return g
}

// gate is a channel closed once.
type gate struct {
	once sync.Once
	ch   chan struct{}
}

func (g *gate) open()              { g.once.Do(func() { close(g.ch) }) }
func (g *gate) C() <-chan struct{} { return g.ch }
func (g *gate) isOpen() bool {
	select {
	case <-g.ch:
		return true
	default:
		return false
	}
}
func (g *gate) wait(ctx context.Context) error {
	select {
	case <-g.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// await waits until ch is closed or receives, failing the case at its
// deadline.
func (e *env) await(what string, ch <-chan struct{}) {
	e.Helper()
	select {
	case <-ch:
	case <-e.ctx.Done():
		e.Fatalf("timed out after %s waiting for %s", CaseTimeout, what)
	}
}

// notifier wakes waiters whenever something changes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// C returns a channel closed at the next Notify.
func (n *notifier) C() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// Notify wakes the waiters.
func (n *notifier) Notify() {
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

// waitUntil waits on the signals of n until cond holds, failing the case at
// its deadline.
func (e *env) waitUntil(what string, n *notifier, cond func() bool) {
	e.Helper()
	for {
		ch := n.C()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-e.ctx.Done():
			e.Fatalf("timed out after %s waiting for %s", CaseTimeout, what)
		}
	}
}

// recorder records the messages a handler receives, in the order received.
type recorder struct {
	notifier
	mu   sync.Mutex
	msgs []*messaging.Message
}

func (r *recorder) add(m *messaging.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	r.Notify()
}

// handle is a Handler that records and succeeds.
func (r *recorder) handle(_ context.Context, m *messaging.Message) error {
	r.add(m)
	return nil
}

func (r *recorder) all() []*messaging.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*messaging.Message(nil), r.msgs...)
}

// bodies returns how often each body was received.
func (r *recorder) bodies() map[string]int {
	out := map[string]int{}
	for _, m := range r.all() {
		out[string(m.Body)]++
	}
	return out
}

func (r *recorder) has(body string) bool { return r.bodies()[body] > 0 }

// awaitBodies waits until r has received every body of want.
func (e *env) awaitBodies(r *recorder, want ...string) {
	e.Helper()
	e.waitUntil(fmt.Sprintf("%d messages", len(want)), &r.notifier, func() bool {
		got := r.bodies()
		for _, w := range want {
			if got[w] == 0 {
				return false
			}
		}
		return true
	})
}

// awaitCount waits until r has received at least n messages.
func (e *env) awaitCount(r *recorder, n int) {
	e.Helper()
	e.waitUntil(fmt.Sprintf("%d messages", n), &r.notifier, func() bool { return len(r.all()) >= n })
}

// before returns the messages r received before the first with body
// marker, waiting for the marker.
func (e *env) before(r *recorder, marker string) []*messaging.Message {
	e.Helper()
	e.awaitBodies(r, marker)
	var out []*messaging.Message
	for _, m := range r.all() {
		if string(m.Body) == marker {
			break
		}
		out = append(out, m)
	}
	return out
}

// subscribe subscribes or fails the case.
func (e *env) subscribe(c *messaging.Client, topic, group string, h messaging.Handler, opts ...messaging.SubscribeOption) *messaging.Subscription {
	e.Helper()
	s, err := c.Subscribe(e.ctx, topic, group, h, opts...)
	if err != nil {
		e.Fatalf("Subscribe(%s, %s): %v", topic, group, err)
	}
	return s
}

// listen listens or fails the case.
func (e *env) listen(c *messaging.Client, recipient string, h messaging.Handler, opts ...messaging.SubscribeOption) *messaging.Subscription {
	e.Helper()
	s, err := c.Listen(e.ctx, recipient, h, opts...)
	if err != nil {
		e.Fatalf("Listen(%s): %v", recipient, err)
	}
	return s
}

// serve serves or fails the case.
func (e *env) serve(c *messaging.Client, service string, h messaging.ReplyHandler, opts ...messaging.SubscribeOption) *messaging.Subscription {
	e.Helper()
	s, err := c.Serve(e.ctx, service, h, opts...)
	if err != nil {
		e.Fatalf("Serve(%s): %v", service, err)
	}
	return s
}

// respond responds or fails the case.
func (e *env) respond(c *messaging.Client, topic, group string, h messaging.ReplyHandler, opts ...messaging.SubscribeOption) *messaging.Subscription {
	e.Helper()
	s, err := c.Respond(e.ctx, topic, group, h, opts...)
	if err != nil {
		e.Fatalf("Respond(%s, %s): %v", topic, group, err)
	}
	return s
}

// publish publishes or fails the case.
func (e *env) publish(c *messaging.Client, topic string, msgs ...*messaging.Message) {
	e.Helper()
	if err := c.Publish(e.ctx, topic, msgs...); err != nil {
		e.Fatalf("Publish(%s): %v", topic, err)
	}
}

// notify notifies or fails the case.
func (e *env) notify(c *messaging.Client, recipient string, msgs ...*messaging.Message) {
	e.Helper()
	if err := c.Notify(e.ctx, recipient, msgs...); err != nil {
		e.Fatalf("Notify(%s): %v", recipient, err)
	}
}

// msg returns a message with body and key.
func msg(key, body string) *messaging.Message {
	return &messaging.Message{Key: key, Body: []byte(body)}
}

// seq returns the bodies prefix0 … prefix<n-1>.
func seq(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// mustErr fails the case unless err matches target.
func (e *env) mustErr(what string, err, target error) {
	e.Helper()
	if !errors.Is(err, target) {
		e.Errorf("%s: got error %v, want one matching %v", what, err, target)
	}
}

// noPanic runs fn, turning a panic into a failure of the case.
func (e *env) noPanic(what string, fn func() error) (err error) {
	e.Helper()
	defer func() {
		if r := recover(); r != nil {
			e.Errorf("%s panicked: %v", what, r)
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn()
}

// deadLetters listens on a dead-letter queue and parses what arrives.
type deadLetters struct {
	notifier
	mu  sync.Mutex
	got []*messaging.DeadLetter
	bad []error
}

func (e *env) listenDeadLetters(c *messaging.Client, dlq string) *deadLetters {
	e.Helper()
	d := &deadLetters{}
	e.listen(c, dlq, func(_ context.Context, m *messaging.Message) error {
		dl, err := messaging.ParseDeadLetter(m)
		d.mu.Lock()
		if err != nil {
			d.bad = append(d.bad, err)
		} else {
			d.got = append(d.got, dl)
		}
		d.mu.Unlock()
		d.Notify()
		return nil
	})
	return d
}

// await waits for the dead letter of the message with body.
func (d *deadLetters) await(e *env, body string) *messaging.DeadLetter {
	e.Helper()
	var found *messaging.DeadLetter
	e.waitUntil("dead letter of "+body, &d.notifier, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, err := range d.bad {
			e.Errorf("ParseDeadLetter: %v", err)
		}
		d.bad = nil
		for _, dl := range d.got {
			if string(dl.Original.Body) == body {
				found = dl
				return true
			}
		}
		return false
	})
	return found
}

// errText returns err's text, or "<nil>".
func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
