package messaging_test

// Regression tests of delayed delivery (issue 15), first written by the
// tester as break tests (D1-D8). Each names the rule it checks. Run:
//
//	go test -count=1 -race -run 'TestDelayRegress' ./messaging
//
// or one case on one transport, e.g.
//
//	go test -count=1 -race -run 'TestDelayRegress/LongDelaysDoNotBlockShort/kafka' ./messaging

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/switchboard-go/switchboard/inmem"
	_ "github.com/switchboard-go/switchboard/kafka"
	"github.com/switchboard-go/switchboard/kafka/kafkatest"
	"github.com/switchboard-go/switchboard/messaging"
	_ "github.com/switchboard-go/switchboard/rabbitmq"
	"github.com/switchboard-go/switchboard/rabbitmq/rabbitmqtest"
	_ "github.com/switchboard-go/switchboard/sqs"
	"github.com/switchboard-go/switchboard/sqs/sqstest"
)

// breakTransport is one transport of the break tests. durable is false
// for the in-memory broker, which lives in one transport (mem:// opens a
// private broker each time), so that a second client cannot reach it.
type breakTransport struct {
	name    string
	url     func(t *testing.T) string
	durable bool
}

// exactKeyOrder reports whether R121 holds exactly on a transport beyond
// one scheduler's reach: on inmem (native delays, one broker timer). The
// emulating transports promise order there only between messages due
// further apart than the forwarding lateness (R121 a-c).
func exactKeyOrder(tr string) bool { return tr == "inmem" }

var breakTransports = []breakTransport{
	{"inmem", func(*testing.T) string { return "mem://" }, false},
	{"kafka", func(t *testing.T) string { return kafkatest.URL(t) }, true},
	{"rabbitmq", func(t *testing.T) string {
		u := rabbitmqtest.URL(t)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = rabbitmqtest.DeleteDeclared(ctx, u, "brk")
		})
		return u
	}, true},
	{"sqs", func(t *testing.T) string { return sqstest.URL(t) }, true},
}

func eachBreakTransport(t *testing.T, durableOnly bool, f func(t *testing.T, url string)) {
	eachBreakTransportNamed(t, durableOnly, func(t *testing.T, _, url string) { f(t, url) })
}

// eachBreakTransportNamed is eachBreakTransport, telling f the
// transport's name.
func eachBreakTransportNamed(t *testing.T, durableOnly bool, f func(t *testing.T, name, url string)) {
	for _, tr := range breakTransports {
		if durableOnly && !tr.durable {
			continue // mem:// is one client's broker: these cases need a second client on the same broker
		}
		t.Run(tr.name, func(t *testing.T) {
			f(t, tr.name, tr.url(t))
		})
	}
}

func brkName(what string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "brk-" + what + "-" + hex.EncodeToString(b)
}

func brkOpen(t *testing.T, ctx context.Context, url string, opts ...messaging.ClientOption) *messaging.Client {
	t.Helper()
	c, err := messaging.Open(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recorder keeps the bodies a handler got, in arrival order.
type recorder struct {
	mu     sync.Mutex
	bodies []string
	ch     chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) handle(_ context.Context, m *messaging.Message) error {
	r.mu.Lock()
	r.bodies = append(r.bodies, string(m.Body))
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// waitFor waits until pred holds on the bodies received, or d passes.
func (r *recorder) waitFor(d time.Duration, pred func([]string) bool) ([]string, bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		got := r.snapshot()
		if pred(got) {
			return got, true
		}
		select {
		case <-r.ch:
		case <-deadline.C:
			got := r.snapshot()
			return got, pred(got)
		}
	}
}

func contains(body string) func([]string) bool {
	return func(got []string) bool {
		for _, b := range got {
			if b == body {
				return true
			}
		}
		return false
	}
}

func atLeast(n int) func([]string) bool {
	return func(got []string) bool { return len(dedupe(got)) >= n }
}

func dedupe(got []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, b := range got {
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return out
}

// TestDelayRegress groups the break tests of delayed delivery.
func TestDelayRegress(t *testing.T) {
	// R116 (handed over promptly once due) and the issue's "long delays
	// (hours/days) must not block short ones": a topic with more delayed
	// messages due in an hour (1500) than a scheduler holds (delayCapacity, 256)
	// must still deliver a message due in a second about a second later.
	t.Run("LongDelaysDoNotBlockShort", func(t *testing.T) {
		eachBreakTransport(t, false, func(t *testing.T, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := brkOpen(t, ctx, url)
			topic := brkName("long")
			rec := newRecorder()
			sub, err := c.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			later := time.Now().Add(time.Hour)
			var long []*messaging.Message
			for i := range 1500 {
				long = append(long, &messaging.Message{Body: fmt.Appendf(nil, "long-%d", i), DeliverAt: later})
			}
			if err := c.Publish(ctx, topic, long...); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			if err := c.Publish(ctx, topic, &messaging.Message{Body: []byte("short"), DeliverAt: sent.Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
			if got, ok := rec.waitFor(30*time.Second, contains("short")); !ok {
				t.Fatalf("a message due 1s after publish not handed over within 30s behind 1500 messages due in 1h (got %d messages)", len(got))
			}
			t.Logf("short message handed over %v after publish", time.Since(sent))
		})
	})

	// R121: 300 messages of one key due at the same instant, published in
	// order in one call (more than a scheduler holds at once, 256): on
	// inmem they arrive in publish order; on the emulating transports all
	// arrive, in an order R121 (b) leaves open (D2).
	t.Run("KeyOrderSameDueTimeOverCapacity", func(t *testing.T) {
		eachBreakTransportNamed(t, false, func(t *testing.T, tr, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c := brkOpen(t, ctx, url)
			topic := brkName("ksame")
			rec := newRecorder()
			sub, err := c.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			const n = 300
			due := time.Now().Add(3 * time.Second)
			var msgs []*messaging.Message
			for i := range n {
				msgs = append(msgs, &messaging.Message{Key: "k", Body: fmt.Appendf(nil, "%03d", i), DeliverAt: due})
			}
			if err := c.Publish(ctx, topic, msgs...); err != nil {
				t.Fatal(err)
			}
			got, ok := rec.waitFor(60*time.Second, atLeast(n))
			if !ok {
				t.Fatalf("got %d of %d messages", len(dedupe(got)), n)
			}
			if exactKeyOrder(tr) {
				checkOrder(t, dedupe(got))
			}
		})
	})

	// R121 (c) across a consumer restart: the producer publishes k/first
	// due in 300ms and, once it is due, k/second undelayed, while no
	// consumer of the topic runs (a producer-only client; the consumer is
	// being redeployed). On the emulating transports first waits in the
	// delay queue until the next consumer's scheduler forwards it, after
	// second, which the topic already holds: the group gets second, then
	// first, as R121 (c) states (D4).
	t.Run("KeyOrderDueWhileNoConsumer", func(t *testing.T) {
		eachBreakTransport(t, true, func(t *testing.T, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			topic := brkName("kdown")
			cons := brkOpen(t, ctx, url)
			rec := newRecorder()
			// The group exists before anything is published.
			sub, err := cons.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			if err := cons.Publish(ctx, topic, &messaging.Message{Key: "k", Body: []byte("warm")}); err != nil {
				t.Fatal(err)
			}
			if _, ok := rec.waitFor(30*time.Second, contains("warm")); !ok {
				t.Fatal("warm-up message not received")
			}
			if err := sub.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}

			prod := brkOpen(t, ctx, url)
			due := time.Now().Add(300 * time.Millisecond)
			if err := prod.Publish(ctx, topic, &messaging.Message{Key: "k", Body: []byte("first"), DeliverAt: due}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(due) + 200*time.Millisecond) // a clock, not a synchronisation: first is due
			if err := prod.Publish(ctx, topic, &messaging.Message{Key: "k", Body: []byte("second")}); err != nil {
				t.Fatal(err)
			}
			prod.Close()

			sub, err = cons.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			got, ok := rec.waitFor(30*time.Second, func(g []string) bool { return contains("first")(g) && contains("second")(g) })
			if !ok {
				t.Fatalf("got %q, want warm, first, second", got)
			}
			got = dedupe(got)
			if strings.Join(got, ",") != "warm,second,first" {
				t.Fatalf("key k handed over as %q; R121 (c): a message due while no consumer ran is forwarded when the next starts, after what the topic holds: want warm,second,first", got)
			}
		})
	})

	// R121 (a) with two replicas of one consumer group (two schedulers on
	// one delay queue): 20 keys × 30 messages, all due at the same
	// instant: every message arrives; their order within a key is left
	// open, each scheduler holding some of them (D3).
	t.Run("KeyOrderTwoReplicas", func(t *testing.T) {
		eachBreakTransport(t, true, func(t *testing.T, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			topic := brkName("krep")
			rec := newRecorder()
			for range 2 {
				c := brkOpen(t, ctx, url)
				sub, err := c.Subscribe(ctx, topic, "g", rec.handle)
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Close()
			}
			prod := brkOpen(t, ctx, url)
			const keys, per = 20, 30 // 600: more than one scheduler holds (256), so that both hold some
			due := time.Now().Add(3 * time.Second)
			var msgs []*messaging.Message
			for i := range per {
				for k := range keys {
					msgs = append(msgs, &messaging.Message{Key: fmt.Sprint("k", k), Body: fmt.Appendf(nil, "k%02d-%02d", k, i), DeliverAt: due})
				}
			}
			if err := prod.Publish(ctx, topic, msgs...); err != nil {
				t.Fatal(err)
			}
			got, ok := rec.waitFor(60*time.Second, atLeast(keys*per))
			if !ok {
				t.Fatalf("got %d of %d", len(dedupe(got)), keys*per)
			}
		})
	})

	// The scheduler logs through the client's logger (WithLogger), and
	// logs nothing at Info per message: a service that sets WithLogger to
	// a discarding logger must not see delay-queue chatter on the default
	// logger.
	t.Run("SchedulerUsesClientLogger", func(t *testing.T) {
		eachBreakTransport(t, false, func(t *testing.T, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var buf lockedBuffer
			old := slog.Default()
			slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
			defer slog.SetDefault(old)
			c := brkOpen(t, ctx, url, messaging.WithLogger(slog.New(slog.DiscardHandler)))
			topic := brkName("log")
			rec := newRecorder()
			sub, err := c.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if err := c.Publish(ctx, topic, &messaging.Message{Body: []byte("x"), DeliverAt: time.Now().Add(200 * time.Millisecond)}); err != nil {
				t.Fatal(err)
			}
			if _, ok := rec.waitFor(30*time.Second, contains("x")); !ok {
				t.Fatal("not received")
			}
			if s := buf.String(); s != "" {
				t.Errorf("the client was given a discarding logger, yet the default logger got:\n%s", s)
			}
		})
	})

	// Shutdown with delayed messages pending loses nothing: a consumer
	// that holds delayed messages and shuts down before they are due
	// hands them back; the next consumer gets each of them once due.
	t.Run("ShutdownWithPendingLosesNothing", func(t *testing.T) {
		eachBreakTransport(t, true, func(t *testing.T, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			topic := brkName("shut")
			rec := newRecorder()
			c1 := brkOpen(t, ctx, url)
			sub, err := c1.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			due := time.Now().Add(2 * time.Second)
			var msgs []*messaging.Message
			for i := range 20 {
				msgs = append(msgs, &messaging.Message{Body: fmt.Appendf(nil, "%03d", i), DeliverAt: due})
			}
			if err := c1.Publish(ctx, topic, msgs...); err != nil {
				t.Fatal(err)
			}
			if err := c1.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			_ = sub
			c2 := brkOpen(t, ctx, url)
			sub2, err := c2.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer sub2.Close()
			if got, ok := rec.waitFor(60*time.Second, atLeast(20)); !ok {
				t.Fatalf("after a shutdown with 20 delayed messages pending, got %d: %q", len(dedupe(got)), dedupe(got))
			}
		})
	})

	// In-memory native delays (inmem/delay.go): one broker-wide timer
	// delivers due messages one delivery at a time, with no context. A
	// delayed message to a queue that is full (max_queue_length, nobody
	// listening) blocks that delivery forever, and with it every other
	// delayed message of the broker: here a topic's message due 300ms
	// later, whose subscriber is idle, is never handed over. The blocked
	// timer goroutine also outlives Client.Close (goleak).
	t.Run("InmemFullQueueBlocksAllDelays", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := messaging.Open(ctx, "mem://?max_queue_length=1")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Notify(ctx, "full", &messaging.Message{Body: []byte("fills the queue")}); err != nil {
			t.Fatal(err)
		}
		if err := c.Notify(ctx, "full", &messaging.Message{Body: []byte("due to a full queue"), DeliverAt: time.Now().Add(100 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		sub, err := c.Subscribe(ctx, "other", "g", rec.handle)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if err := c.Publish(ctx, "other", &messaging.Message{Body: []byte("other"), DeliverAt: time.Now().Add(300 * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
		if _, ok := rec.waitFor(10*time.Second, contains("other")); !ok {
			t.Fatal("a delayed message to topic other, whose subscriber is idle, not handed over in 10s: the broker's delay timer is stuck delivering to the full queue \"full\"")
		}
	})

	// R121 with delayed and undelayed messages of one key mixed in one
	// Publish: by due time, then publish order.
	t.Run("KeyOrderMixed", func(t *testing.T) {
		eachBreakTransport(t, false, func(t *testing.T, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := brkOpen(t, ctx, url)
			topic := brkName("mixed")
			rec := newRecorder()
			sub, err := c.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			now := time.Now()
			at := func(d time.Duration) time.Time {
				if d == 0 {
					return time.Time{}
				}
				return now.Add(d)
			}
			plan := []struct {
				body string
				d    time.Duration
			}{{"e", 3 * time.Second}, {"a", 0}, {"c", 1500 * time.Millisecond}, {"b", -time.Hour}, {"d", 1500 * time.Millisecond}, {"f", 3 * time.Second}}
			var msgs []*messaging.Message
			for _, p := range plan {
				msgs = append(msgs, &messaging.Message{Key: "k", Body: []byte(p.body), DeliverAt: at(p.d)})
			}
			if err := c.Publish(ctx, topic, msgs...); err != nil {
				t.Fatal(err)
			}
			got, ok := rec.waitFor(45*time.Second, atLeast(len(plan)))
			if !ok {
				t.Fatalf("got %q", got)
			}
			if g := strings.Join(dedupe(got), ""); g != "abcdef" {
				t.Errorf("key k handed over as %q; by due time then publish order it is \"abcdef\"", g)
			}
		})
	})

	// A delayed Notify to a recipient nobody declared nor listens to,
	// from a producer that exits at once; the recipient listens later
	// (after the due time) and gets it (R118).
	t.Run("NotifyUndeclaredProducerGone", func(t *testing.T) {
		eachBreakTransport(t, true, func(t *testing.T, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rcpt := brkName("rcpt")
			prod, err := messaging.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			due := time.Now().Add(500 * time.Millisecond)
			if err := prod.Notify(ctx, rcpt, &messaging.Message{Body: []byte("later"), DeliverAt: due}); err != nil {
				t.Fatal(err)
			}
			if err := prod.Close(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(due) + 500*time.Millisecond) // a clock: the message is past due before anyone listens
			c := brkOpen(t, ctx, url)
			rec := newRecorder()
			sub, err := c.Listen(ctx, rcpt, rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if got, ok := rec.waitFor(30*time.Second, contains("later")); !ok {
				t.Fatalf("got %q", got)
			}
		})
	})

	// Operational side effect (D7, design, documented in SEMANTICS
	// "How each transport delays messages"): every Subscribe and Listen
	// runs a scheduler that declares the durable queue "<topic>.sb-delay"
	// and consumes it, even for a topic that never gets a delayed message
	// (the scheduler cannot know that another client will publish one).
	// The queue exists once the subscription runs, and holds nothing.
	t.Run("SubscribeDeclaresDelayQueue", func(t *testing.T) {
		eachBreakTransport(t, true, func(t *testing.T, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := brkOpen(t, ctx, url)
			topic := brkName("plain")
			rec := newRecorder()
			sub, err := c.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if err := c.Publish(ctx, topic, &messaging.Message{Body: []byte("plain")}); err != nil {
				t.Fatal(err)
			}
			if _, ok := rec.waitFor(30*time.Second, contains("plain")); !ok {
				t.Fatal("not received")
			}
			for {
				info, err := c.Admin().Inspect(ctx, messaging.DelayQueue(topic), "")
				if err == nil {
					if info.Messages != 0 {
						t.Errorf("Inspect(%s) = %+v; want an empty delay queue", messaging.DelayQueue(topic), info)
					}
					return
				}
				if !errors.Is(err, messaging.ErrNotFound) {
					t.Fatal(err)
				}
				// The scheduler declares it in the background: poll (a
				// condition on the broker, no signal to await).
				select {
				case <-ctx.Done():
					t.Fatalf("Inspect(%s): %v; a subscription declares its topic's delay queue", messaging.DelayQueue(topic), err)
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	})

	// Bad due times: past, zero, far past, beyond MaxDelay, far future
	// (no overflow), requests.
	t.Run("DueTimeInputs", func(t *testing.T) {
		eachBreakTransport(t, false, func(t *testing.T, url string) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := brkOpen(t, ctx, url)
			topic := brkName("due")
			rec := newRecorder()
			sub, err := c.Subscribe(ctx, topic, "g", rec.handle)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			now := time.Now()
			for _, at := range []time.Time{{}, now.Add(-time.Hour), time.Unix(0, 0), time.Time{}.Add(1), now.Add(-messaging.MaxDelay * 10)} {
				if err := c.Publish(ctx, topic, &messaging.Message{Body: []byte(at.String()), DeliverAt: at}); err != nil {
					t.Errorf("DeliverAt %v (past): %v, want accepted as now", at, err)
				}
			}
			for _, at := range []time.Time{now.Add(messaging.MaxDelay + time.Minute), time.Unix(1<<62, 0), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)} {
				err := c.Publish(ctx, topic, &messaging.Message{Body: []byte("x"), DeliverAt: at})
				if !errors.Is(err, messaging.ErrInvalid) || !strings.Contains(err.Error(), "168h") {
					t.Errorf("DeliverAt %v: %v, want ErrInvalid naming the maximum", at, err)
				}
				err = c.Notify(ctx, topic+"-q", &messaging.Message{Body: []byte("x"), DeliverAt: at})
				if !errors.Is(err, messaging.ErrInvalid) {
					t.Errorf("Notify DeliverAt %v: %v, want ErrInvalid", at, err)
				}
			}
			if _, err := c.Request(ctx, "svc", &messaging.Message{DeliverAt: now.Add(time.Minute)}); !errors.Is(err, messaging.ErrInvalid) {
				t.Errorf("delayed Request: %v, want ErrInvalid", err)
			}
			if got, ok := rec.waitFor(30*time.Second, atLeast(3)); !ok {
				t.Errorf("past-due messages: got %q", got)
			}
		})
	})
}

func checkOrder(t *testing.T, got []string) {
	t.Helper()
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			t.Errorf("one key's messages out of publish order at %d: %s after %s (first 20: %q)", i, got[i], got[i-1], got[:min(20, len(got))])
			return
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

const (
	delayChildEnv   = "SWITCHBOARD_DELAY_BREAK_CHILD_URL"
	delayChildTopic = "SWITCHBOARD_DELAY_BREAK_CHILD_TOPIC"
)

// TestDelayRegressChild is the consumer process of
// TestDelayRegressConsumerKilled; it does nothing unless started by it.
func TestDelayRegressChild(t *testing.T) {
	url := os.Getenv(delayChildEnv)
	if url == "" {
		return
	}
	ctx := context.Background()
	c, err := messaging.Open(ctx, url)
	if err != nil {
		fmt.Println("open error", err)
		os.Exit(3)
	}
	if _, err := c.Subscribe(ctx, os.Getenv(delayChildTopic), "g", func(context.Context, *messaging.Message) error {
		return nil
	}); err != nil {
		fmt.Println("subscribe error", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	os.Exit(0)
}

// TestDelayRegressConsumerKilled: the only consumer of a topic (with its
// delay-queue scheduler holding the delayed messages) is killed with
// SIGKILL before they are due; the next consumer gets every one of them
// (R118: nothing lost when a client stops).
//
//	go test -count=1 -race -run 'TestDelayRegressConsumerKilled' ./messaging
func TestDelayRegressConsumerKilled(t *testing.T) {
	eachBreakTransport(t, true, func(t *testing.T, url string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		topic := brkName("kill")
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDelayRegressChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), delayChildEnv+"="+url, delayChildTopic+"="+topic)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer cmd.Process.Kill()
		sc := bufio.NewScanner(out)
		for sc.Scan() && sc.Text() != "ready" {
		}
		prod := brkOpen(t, ctx, url)
		due := time.Now().Add(4 * time.Second)
		var msgs []*messaging.Message
		for i := range 20 {
			msgs = append(msgs, &messaging.Message{Body: fmt.Appendf(nil, "%03d", i), DeliverAt: due})
		}
		if err := prod.Publish(ctx, topic, msgs...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // the child's scheduler receives and holds them (a scenario step)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		rec := newRecorder()
		sub, err := prod.Subscribe(ctx, topic, "g", rec.handle)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		if got, ok := rec.waitFor(90*time.Second, atLeast(20)); !ok {
			t.Fatalf("after the consumer holding 20 delayed messages was killed, the next consumer got %d: %q", len(dedupe(got)), dedupe(got))
		}
	})
}
