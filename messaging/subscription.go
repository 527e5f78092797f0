package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/switchboard-go/switchboard/transport"
)

// Handler handles one message. Returning nil acknowledges the message;
// returning an error makes it retried per the subscription's RetryPolicy
// and then dead-lettered, or dead-lettered at once if the error is marked
// with Permanent. A panic counts as an error. ctx is cancelled when the
// subscription's drain deadline passes during shutdown.
type Handler func(ctx context.Context, m *Message) error

// Subscription consumes a consumer group, a recipient's queue or a
// service's requests. Close it (or the Client) to stop it gracefully.
//
// The context given to Subscribe, Listen, Serve or Respond bounds only the
// call (the declaration of the group or queue), as in database/sql's
// Conn methods: cancelling it afterwards does not stop the subscription.
// Only Close, Shutdown and the Client's Close and Shutdown stop it.
type Subscription struct {
	c       *Client
	source  string // topic, recipient or service, as the user named it
	group   string
	dlq     string
	ts      transport.Subscription
	handler Handler
	o       subOptions
	log     *slog.Logger

	slots chan struct{}           // one per message held, capacity maxInFlight
	work  chan *transport.Message // to the workers, capacity maxInFlight
	idle  atomic.Int64            // idle workers less messages waiting in work
	// workers is how many workers were started; only run touches it.
	workers int

	fetchCtx   context.Context // cancelled to stop fetching
	stopFetch  context.CancelFunc
	handlerCtx context.Context // cancelled at the drain deadline
	hardStop   context.CancelFunc
	drainCh    chan struct{} // closed when shutdown begins
	draining   atomic.Bool
	handlers   sync.WaitGroup // the workers
	loopDone   chan struct{}

	lanesMu sync.Mutex
	lanes   map[string]*lane

	// looped holds, per key, the delivery count of the last message of
	// the key dead-lettered as a crash loop (see firstAttempt).
	loopedMu sync.Mutex
	looped   map[string]int

	acks  *acker
	sm    subMetrics
	sched *scheduler // forwards the due messages of the delay queue, or nil

	closeOnce sync.Once
	closeErr  error
	done      chan struct{}
	errMu     sync.Mutex
	err       error
}

// lane holds the messages of one key waiting behind the one being handled.
type lane struct{ queue []*transport.Message }

// Subscribe consumes topic as a member of group, calling h for every
// message. Every group receives every message published to the topic
// after the group was first declared, durably: messages published while
// no member is connected wait for the group. Members of one group share
// the messages. Subscribe returns once the group is declared. ctx bounds
// that declaration only: cancelling it later does not stop the
// subscription (see Subscription).
func (c *Client) Subscribe(ctx context.Context, topic, group string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validName("topic", topic); err != nil {
		return nil, err
	}
	if err := validName("group", group); err != nil {
		return nil, err
	}
	return c.subscribe(ctx, transport.Topic(topic), group, topic, DeadLetterQueue(topic, group), h, opts, true)
}

// Listen consumes the notifications sent to recipient with Notify,
// including those sent before anyone listened.
func (c *Client) Listen(ctx context.Context, recipient string, h Handler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validName("recipient", recipient); err != nil {
		return nil, err
	}
	dlq := DeadLetterQueue(recipient, "")
	if IsDeadLetterQueue(recipient) {
		// A dead-letter queue's consumer dead-letters into the same
		// queue, envelope kept: no "<name>.dlq.dlq" (R94).
		dlq = recipient
	}
	return c.subscribe(ctx, transport.Queue(recipient), "", recipient, dlq, h, opts, !IsDeadLetterQueue(recipient))
}

// IsDeadLetterQueue reports whether name is a dead-letter queue's name, as
// DeadLetterQueue makes them: it ends in ".dlq". Listen on such a queue
// sends the messages its handler fails on back to the same queue, with
// their failure envelope unchanged, instead of to a "<name>.dlq.dlq".
func IsDeadLetterQueue(name string) bool { return strings.HasSuffix(name, ".dlq") }

// DeadLetterQueue returns the name of the queue that receives the dead
// letters of a group of topic, or, with an empty group, of a recipient's
// or service's queue. Read it with Listen and ParseDeadLetter.
func DeadLetterQueue(topic, group string) string {
	if group == "" {
		return topic + ".dlq"
	}
	return topic + "." + group + ".dlq"
}

// subscribe opens a subscription; with delays, it also runs the scheduler
// of from's delay queue where the transport may need one (delay.go).
func (c *Client) subscribe(ctx context.Context, from transport.Address, group, source, dlq string, h Handler, opts []SubscribeOption, delays bool) (*Subscription, error) {
	if h == nil {
		return nil, invalid("nil handler")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o, err := c.subOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.deadLetter != "" {
		dlq = o.deadLetter
	}
	if err := c.enter(); err != nil {
		return nil, err
	}
	defer c.ops.Done()
	// The dead-letter queue is declared by the first dead letter
	// (deadLetter), so that a subscription that never dead-letters
	// leaves no empty dead-letter queue behind.
	ts, err := c.t.Subscribe(ctx, from, group, transport.SubscribeOptions{MaxInFlight: o.maxInFlight})
	if err != nil {
		return nil, wrapOp(err, "subscribe to", from.String(), from.Name)
	}
	s := &Subscription{
		c:        c,
		source:   source,
		group:    group,
		dlq:      dlq,
		ts:       ts,
		handler:  chainHandler(h, o.middleware),
		o:        o,
		log:      c.log.With("source", source, "group", group),
		slots:    make(chan struct{}, o.maxInFlight),
		work:     make(chan *transport.Message, o.maxInFlight),
		drainCh:  make(chan struct{}),
		loopDone: make(chan struct{}),
		lanes:    make(map[string]*lane),
		done:     make(chan struct{}),
	}
	s.fetchCtx, s.stopFetch = context.WithCancel(context.Background())
	s.handlerCtx, s.hardStop = context.WithCancel(context.WithValue(context.Background(), drainingKey{}, s.drainCh))
	s.acks = newAcker(ts, s.log)
	s.sm = c.tel.forSubscription(source, group)
	if delays && c.caps.MaxDelay < MaxDelay {
		s.sched = c.startScheduler(from)
	}
	if err := c.addSub(s); err != nil {
		if s.sched != nil {
			s.sched.cancel()
			<-s.sched.done
		}
		s.acks.close()
		ts.Close()
		return nil, err
	}
	go s.run()
	return s, nil
}

// Done is closed when the subscription has stopped: closed by the user or
// the client, or failed (see Err).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err returns why the subscription stopped by itself, or nil.
func (s *Subscription) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// run fetches while there is room, and dispatches.
func (s *Subscription) run() {
	defer close(s.loopDone)
	var failures int
	for {
		// Wait for room for one message, then take what more is free.
		select {
		case s.slots <- struct{}{}:
		case <-s.fetchCtx.Done():
			return
		}
		n := 1
	more:
		for n < s.o.maxInFlight {
			select {
			case s.slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		msgs, err := s.ts.Receive(s.fetchCtx, n)
		for i := len(msgs); i < n; i++ {
			<-s.slots
		}
		for i := n; i < len(msgs); i++ { // an adapter that returned too many
			s.slots <- struct{}{}
		}
		for _, tm := range msgs {
			s.dispatch(tm)
		}
		if err == nil {
			failures = 0
			continue
		}
		if s.fetchCtx.Err() != nil {
			return
		}
		if errors.Is(err, ErrClosed) {
			text := "switchboard: subscription to " + s.source + " stopped"
			if transport.Names(err, s.source) {
				text = "switchboard: subscription stopped"
			}
			s.fail(transport.Layer(err, text))
			return
		}
		failures++
		wait := min(time.Duration(failures)*100*time.Millisecond, 5*time.Second)
		s.log.Warn("switchboard: receive failed; retrying", "error", err, "wait", wait)
		select {
		case <-time.After(wait):
		case <-s.fetchCtx.Done():
			return
		}
	}
}

// fail records a failure that stopped the loop and shuts down in the
// background.
func (s *Subscription) fail(err error) {
	s.errMu.Lock()
	s.err = err
	s.errMu.Unlock()
	s.log.Error("switchboard: subscription failed", "error", err)
	go s.Close()
}

func (s *Subscription) dispatch(tm *transport.Message) {
	s.c.tel.count(s.c.tel.delivered, s.sm, 1)
	s.c.tel.flight(s.sm, 1)
	if s.o.keyOrdering && tm.Key != "" {
		s.lanesMu.Lock()
		if l, busy := s.lanes[tm.Key]; busy {
			l.queue = append(l.queue, tm)
			s.lanesMu.Unlock()
			return
		}
		s.lanes[tm.Key] = lanePool.Get().(*lane)
		s.lanesMu.Unlock()
	}
	s.work <- tm // never blocks: it has room for every slot
	// Every message in s.work is matched with an idle worker, or a new
	// one is started, so no message waits behind a busy worker. When
	// the pool is full, the message count (bounded by the slots) cannot
	// exceed the workers, so one is about to take it.
	if s.idle.Add(-1) < 0 {
		s.idle.Add(1)
		if s.workers < s.o.maxInFlight {
			s.workers++
			s.handlers.Add(1)
			go s.worker()
		}
	}
}

var lanePool = sync.Pool{New: func() any { return new(lane) }}

// worker handles messages until the work channel closes at shutdown. After
// a keyed message it goes on with the next message of the same key, so a
// key's messages are handled one at a time, in order.
func (s *Subscription) worker() {
	defer s.handlers.Done()
	for tm := range s.work {
		for tm != nil {
			if s.draining.Load() {
				s.release(tm)
			} else {
				s.process(tm)
			}
			tm = s.next(tm)
		}
		s.idle.Add(1)
	}
}

// next returns the message queued behind tm's key, or nil when the key has
// none left (its lane is then removed).
func (s *Subscription) next(tm *transport.Message) *transport.Message {
	if !s.o.keyOrdering || tm.Key == "" {
		return nil
	}
	s.lanesMu.Lock()
	defer s.lanesMu.Unlock()
	l := s.lanes[tm.Key]
	if len(l.queue) == 0 {
		delete(s.lanes, tm.Key)
		l.queue = l.queue[:0]
		lanePool.Put(l)
		return nil
	}
	nxt := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	return nxt
}

// process calls the handler until it succeeds, the attempts are used up or
// the error is permanent, then acknowledges or dead-letters the message.
// During shutdown a message that still needs a call is released instead.
//
// The attempt of the first call is the delivery's number (see
// deliveryAttempt); a delivery already past MaxAttempts is dead-lettered
// without calling the handler: the consumers it reached before stopped
// while holding it (a crash loop).
func (s *Subscription) process(tm *transport.Message) {
	attempt, looping := s.firstAttempt(tm)
	if looping {
		now := time.Now()
		s.deadLetter(tm, &crashLoopError{deliveries: tm.DeliveryCount, maxAttempts: s.o.retry.MaxAttempts}, tm.DeliveryCount-1, now, now)
		return
	}
	var first time.Time
	var bo *backoff.ExponentialBackOff
	for {
		err := s.call(tm, attempt)
		if err == nil {
			s.settle(tm)
			return
		}
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		if s.draining.Load() && !IsPermanent(err) {
			// Shutting down: the failure may be the shutdown's doing
			// (a cancelled context). Release the message; its next
			// consumer tries again.
			s.release(tm)
			return
		}
		if IsPermanent(err) || attempt >= s.o.retry.MaxAttempts {
			s.deadLetter(tm, err, attempt, first, now)
			return
		}
		if bo == nil {
			bo = s.newBackoff()
		}
		wait := bo.NextBackOff()
		s.c.tel.count(s.c.tel.retried, s.sm, 1)
		s.log.Debug("switchboard: handler failed; will retry", "id", tm.ID, "attempt", attempt, "wait", wait, "error", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.drainCh:
			t.Stop()
			s.release(tm)
			return
		}
		attempt++
	}
}

// maxLoopedKeys bounds the keys a subscription remembers crash loops of.
const maxLoopedKeys = 1024

// firstAttempt returns the attempt of a delivery's first handler call
// (see deliveryAttempt), or looping when the delivery is over MaxAttempts:
// the consumers of its earlier deliveries stopped without settling it.
//
// A crash-looping message holds back the messages queued behind its key
// (one at a time, in order): they were delivered, and released with each
// crash, as often as it was, but never reached their handler. So once a
// key's message is dead-lettered as a crash loop with delivery count n,
// the key's later messages on this subscription do not count the n-1
// deliveries they shared with it.
func (s *Subscription) firstAttempt(tm *transport.Message) (attempt int, looping bool) {
	d := tm.DeliveryCount
	keyed := s.o.keyOrdering && tm.Key != ""
	if keyed && d > 1 {
		s.loopedMu.Lock()
		if n := s.looped[tm.Key]; n > 0 {
			d = max(1, d-(n-1))
		}
		s.loopedMu.Unlock()
	}
	if d <= s.o.retry.MaxAttempts {
		return deliveryAttempt(d), false
	}
	if keyed {
		s.loopedMu.Lock()
		if s.looped == nil || len(s.looped) >= maxLoopedKeys {
			s.looped = make(map[string]int)
		}
		s.looped[tm.Key] = tm.DeliveryCount
		s.loopedMu.Unlock()
	}
	return 0, true
}

func (s *Subscription) newBackoff() *backoff.ExponentialBackOff {
	p := s.o.retry
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialBackoff,
		RandomizationFactor: p.Jitter,
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxBackoff,
		MaxElapsedTime:      0,
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	bo.Reset()
	return bo
}

// call runs the handler once, turning a panic into an error.
func (s *Subscription) call(tm *transport.Message, attempt int) (err error) {
	m := fromTransport(tm, s.source)
	m.Attempt = attempt
	ctx, span := s.c.tel.startProcess(s.handlerCtx, s, tm, attempt)
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("switchboard: handler panicked: %v\n%s", r, debug.Stack())
		}
		s.c.tel.handlerDuration(s.sm, time.Since(start), err)
		endSpan(span, err)
	}()
	return s.handler(ctx, m)
}

// settle acknowledges a message and frees its slot.
func (s *Subscription) settle(tm *transport.Message) {
	s.acks.add(tm.AckID)
	s.c.tel.count(s.c.tel.acked, s.sm, 1)
	s.c.tel.flight(s.sm, -1)
	<-s.slots
}

// release gives a message up unsettled and frees its slot. Released
// messages are not nacked one by one: the transport subscription's Close,
// at the end of Shutdown, stops the broker's deliveries to this consumer
// and then releases every delivery neither acknowledged nor dead-lettered,
// so that each goes to the group's next consumer once, counted as one
// delivery, rather than back to this closing consumer (see
// transport.Subscription.Close).
func (s *Subscription) release(*transport.Message) {
	s.c.tel.flight(s.sm, -1)
	<-s.slots
}

// deadLetter sends the message with its failure envelope to the
// dead-letter queue, then acknowledges it. A dead letter over the
// transport's limits is first shrunk to fit (see shrinkDeadLetter). A send
// that fails for a reason that may pass (the broker unavailable, a
// timeout) is retried until it succeeds or the subscription shuts down,
// when the message is released instead: nothing is acknowledged that was
// not dead-lettered. A send that can never succeed (ErrMessageTooLarge or
// ErrInvalid: the dead letter cannot be made to fit, or the broker refuses
// it) is not retried: the message is acknowledged with an error logged and
// counted in switchboard.messages.dead_letter_failed, so that its key
// moves on. A dead-letter queue that has disappeared (ErrNotFound) is
// declared again before the next try.
func (s *Subscription) deadLetter(tm *transport.Message, cause error, attempts int, first, last time.Time) {
	dl := newDeadLetterMessage(tm, s.source, s.group, cause, attempts, first, last)
	var cut []string
	fit := func(m *transport.Message) error {
		var err error
		cut, err = shrinkDeadLetter(m, s.c.caps)
		return err
	}
	var bo *backoff.ExponentialBackOff
	for {
		ctx, cancel := context.WithTimeout(s.handlerCtx, 30*time.Second)
		err := s.c.transmitFit(ctx, "send", transport.Queue(s.dlq), []*transport.Message{dl}, fit)
		if errors.Is(err, transport.ErrNotFound) {
			// The first dead letter of this queue (or the queue was
			// deleted): declare it and send again.
			if err = s.c.t.Declare(ctx, transport.Queue(s.dlq)); err == nil {
				err = s.c.transmitFit(ctx, "send", transport.Queue(s.dlq), []*transport.Message{dl}, fit)
			}
		}
		cancel()
		if err == nil {
			s.c.tel.count(s.c.tel.deadLettered, s.sm, 1)
			if len(cut) > 0 {
				s.log.Warn("switchboard: message dead-lettered; the dead letter was shrunk to fit the transport's limits",
					"id", tm.ID, "attempts", attempts, "dlq", s.dlq, "cut", cut, "error", cause)
			} else {
				s.log.Warn("switchboard: message dead-lettered", "id", tm.ID, "attempts", attempts, "dlq", s.dlq, "error", cause)
			}
			s.settle(tm)
			return
		}
		if permanentSendError(err) {
			s.c.tel.count(s.c.tel.deadLetterFailed, s.sm, 1)
			s.log.Error("switchboard: dead letter cannot be sent (never will be); message acknowledged without it",
				"id", tm.ID, "key", tm.Key, "attempts", attempts, "dlq", s.dlq, "error", err, "handler_error", cause)
			s.settle(tm)
			return
		}
		s.log.Error("switchboard: dead-letter send failed; will retry", "id", tm.ID, "dlq", s.dlq, "error", err)
		if bo == nil {
			bo = s.newBackoff()
		}
		t := time.NewTimer(bo.NextBackOff())
		select {
		case <-t.C:
		case <-s.drainCh:
			t.Stop()
			s.release(tm)
			return
		}
	}
}

// permanentSendError reports whether a send failed for a reason that
// retrying cannot fix.
func permanentSendError(err error) bool {
	return errors.Is(err, ErrMessageTooLarge) || errors.Is(err, ErrInvalid)
}

// Close shuts the subscription down gracefully, waiting at most the
// client's drain timeout: see Shutdown.
func (s *Subscription) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.c.o.drainTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown stops the subscription gracefully: it stops fetching, lets the
// handlers that are running finish until ctx ends (then cancels their
// context), flushes its acknowledgements and closes the transport's
// subscription, which stops the broker's deliveries to this consumer and
// then releases every message it holds but has not handled (waiting to
// retry, or queued behind its key) back to the broker: the group's next
// consumer gets each of them once more, in key order, as one more
// delivery (see Message.Attempt). The group or queue stays declared: messages
// published afterwards wait for the next consumer. Calling Shutdown again
// returns the first call's result.
func (s *Subscription) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.draining.Store(true)
		if s.sched != nil {
			s.sched.cancel() // stops it in the background; awaited below
		}
		close(s.drainCh)
		s.stopFetch()
		<-s.loopDone
		close(s.work) // the workers release what is left, then stop
		idle := make(chan struct{})
		go func() {
			s.handlers.Wait()
			close(idle)
		}()
		select {
		case <-idle:
		case <-ctx.Done():
			s.hardStop()
			s.closeErr = fmt.Errorf("switchboard: shutdown of %s: handlers still running at the deadline: %w", s.source, ctx.Err())
			// Handlers that honour their context return promptly;
			// wait a little for their acknowledgements.
			select {
			case <-idle:
			case <-time.After(time.Second):
			}
		}
		s.hardStop()
		if s.sched != nil {
			<-s.sched.done // what it held is released
		}
		s.acks.close()
		if err := s.ts.Close(); err != nil && !errors.Is(err, ErrClosed) && s.closeErr == nil {
			s.closeErr = wrapOp(err, "close subscription to", s.source, s.source)
		}
		s.c.removeSub(s)
		close(s.done)
	})
	<-s.done
	return s.closeErr
}

// acker batches acknowledgements: whatever accumulates while one call to
// the transport is in progress goes in the next call.
type acker struct {
	ts     transport.Subscription
	log    *slog.Logger
	ctx    context.Context // for ack calls; cancelled if a flush at close hangs
	cancel context.CancelFunc
	mu     sync.Mutex
	acks   []any
	shut   bool
	wake   chan struct{}
	done   chan struct{}
}

func newAcker(ts transport.Subscription, log *slog.Logger) *acker {
	a := &acker{ts: ts, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	go a.run()
	return a
}

func (a *acker) add(id any) {
	a.mu.Lock()
	if a.shut {
		a.mu.Unlock()
		return // the broker redelivers it: at-least-once
	}
	a.acks = append(a.acks, id)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *acker) run() {
	defer close(a.done)
	var acks []any
	for range a.wake {
		a.mu.Lock()
		acks, a.acks = a.acks, acks[:0]
		shut := a.shut
		a.mu.Unlock()
		if len(acks) > 0 {
			if err := a.ts.Ack(a.ctx, acks); err != nil {
				a.log.Warn("switchboard: ack failed; the broker will redeliver", "count", len(acks), "error", err)
			}
			clear(acks)
		}
		if shut {
			return
		}
	}
}

// ackFlushTimeout bounds the last flush of acknowledgements at close.
const ackFlushTimeout = 30 * time.Second

// close flushes what is pending and stops the acker.
func (a *acker) close() {
	a.mu.Lock()
	a.shut = true
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	t := time.AfterFunc(ackFlushTimeout, a.cancel)
	<-a.done
	t.Stop()
	a.cancel()
}
