package messaging_test

// Break tests of batch handlers (issue 15), written by the tester. Run:
//
//	go test -count=1 -race -run 'TestBatchBreak' ./messaging

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

const batchBreakChild = "SWITCHBOARD_BATCH_BREAK_CHILD"

// fastRetry keeps the retries of these tests short.
var fastRetry = messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Multiplier: 2})

func TestBatchBreak(t *testing.T) {
	// A handler that returns a typed nil *BatchError (the classic Go
	// mistake: `var be *messaging.BatchError; ...; return be`) returns a
	// non-nil error. The subscription must treat it as an error (fail
	// the batch, or even acknowledge it) but never crash the process:
	// handleBatch's errors.As finds the nil *BatchError and reads
	// be.Failed on a nil pointer, outside the handler's recover.
	// Run in a child process, because the panic kills the test binary.
	t.Run("TypedNilBatchErrorCrashesProcess", func(t *testing.T) {
		if os.Getenv(batchBreakChild) == "typednil" {
			typedNilChild(t)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestBatchBreak$/^TypedNilBatchErrorCrashesProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), batchBreakChild+"=typednil")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the process running a batch subscription died when its handler returned a typed nil *BatchError: %v\n%s", err, tail(out, 2500))
		}
	})

	// A BatchError that names only messages not in the batch fails the
	// whole batch (R129): every message is handled again after the
	// backoff (R128). The named message's error is marked Permanent, but
	// that message is not in the batch and is to be ignored: the batch's
	// own messages must not be dead-lettered at once for it.
	t.Run("PermanentOfMessageNotInBatchDeadLettersWholeBatch", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := messaging.Open(ctx, "mem://")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var mu sync.Mutex
		calls := 0
		done := make(chan []string, 1)
		stranger := &messaging.Message{ID: "not-in-batch"}
		_, err = c.SubscribeBatch(ctx, "t", "g", func(_ context.Context, msgs []*messaging.Message) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 1 {
				var be messaging.BatchError
				be.Add(stranger, messaging.Permanent(errors.New("bad stranger")))
				return be.Err()
			}
			var bodies []string
			for _, m := range msgs {
				bodies = append(bodies, string(m.Body))
			}
			select {
			case done <- bodies:
			default:
			}
			return nil
		}, messaging.WithBatchSize(3), messaging.WithBatchWait(time.Hour), fastRetry)
		if err != nil {
			t.Fatal(err)
		}
		dlq := make(chan string, 3)
		if _, err := c.Listen(ctx, messaging.DeadLetterQueue("t", "g"), func(_ context.Context, m *messaging.Message) error {
			dlq <- string(m.Body)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := c.Publish(ctx, "t", &messaging.Message{Body: []byte("a")}, &messaging.Message{Body: []byte("b")}, &messaging.Message{Body: []byte("c")}); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-done:
			t.Logf("batch retried: %q (holds)", got)
		case d := <-dlq:
			t.Fatalf("message %q of the batch dead-lettered at once because the BatchError named a message NOT in the batch with a Permanent error; R129 says such a message is ignored and the whole batch is retried", d)
		case <-ctx.Done():
			t.Fatal("neither retried nor dead-lettered")
		}
	})

	// R126/R132 with key ordering on (the default): MaxInFlight equal to
	// the batch size ("one batch at a time", as R132 suggests) and a
	// long wait ("full batches only"): 20 messages of 2 keys are pending.
	// The open batch takes one message of each key; the rest wait behind
	// their keys, holding every in-flight slot, so the batch can never
	// fill: nothing is handed over until the whole wait (here 1h) passes.
	t.Run("KeyedBacklogStallsFullOnlyBatch", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := messaging.Open(ctx, "mem://")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		got := make(chan int, 100)
		_, err = c.SubscribeBatch(ctx, "t", "g", func(_ context.Context, msgs []*messaging.Message) error {
			got <- len(msgs)
			return nil
		}, messaging.WithBatchSize(5), messaging.WithMaxInFlight(5), messaging.WithBatchWait(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var msgs []*messaging.Message
		for i := range 20 {
			msgs = append(msgs, &messaging.Message{Key: fmt.Sprint("k", i%2), Body: fmt.Appendf(nil, "%d", i)})
		}
		if err := c.Publish(ctx, "t", msgs...); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-got:
			t.Logf("first batch of %d (holds)", n)
		case <-time.After(10 * time.Second):
			t.Fatal("20 messages of 2 keys pending, batch size 5 = MaxInFlight, wait 1h: no batch handed over in 10s (the open batch holds 2 messages, the 3 other slots are taken by messages waiting behind their keys, so it can never fill)")
		}
	})

	// A handler that reorders or blanks its slice, then names messages
	// by the pointers it got, still fails exactly those (R129).
	t.Run("HandlerModifiesSlice", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := messaging.Open(ctx, "mem://")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var mu sync.Mutex
		seen := map[string]int{}
		done := make(chan struct{})
		_, err = c.SubscribeBatch(ctx, "t", "g", func(_ context.Context, msgs []*messaging.Message) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				seen[string(m.Body)]++
			}
			if len(seen) == 4 && seen["b"] == 2 {
				close(done)
			}
			var target *messaging.Message
			for _, m := range msgs {
				if string(m.Body) == "b" && m.Attempt == 1 {
					target = m
				}
			}
			slices.Reverse(msgs)
			for i := range msgs {
				msgs[i] = nil
			}
			if target == nil {
				return nil
			}
			var be messaging.BatchError
			be.Add(target, errors.New("b failed"))
			be.Add(nil, errors.New("nil entry"))
			be.Add(target, errors.New("duplicate"))
			return fmt.Errorf("wrapped: %w", &be)
		}, messaging.WithBatchSize(4), messaging.WithBatchWait(time.Hour), fastRetry)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []*messaging.Message
		for _, b := range []string{"a", "b", "c", "d"} {
			msgs = append(msgs, &messaging.Message{Body: []byte(b)})
		}
		if err := c.Publish(ctx, "t", msgs...); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("seen %v", seen)
		}
		mu.Lock()
		defer mu.Unlock()
		if seen["a"] != 1 || seen["c"] != 1 || seen["d"] != 1 || seen["b"] != 2 {
			t.Errorf("handled %v; want b twice, the others once", seen)
		}
	})
}

func typedNilChild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var mu sync.Mutex
	calls := 0
	handled := make(chan struct{})
	_, err = c.SubscribeBatch(ctx, "t", "g", func(_ context.Context, msgs []*messaging.Message) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls > 1 {
			select {
			case <-handled:
			default:
				close(handled)
			}
			return nil
		}
		var be *messaging.BatchError // nothing failed... but returned as a typed nil
		return be
	}, messaging.WithBatchSize(2), messaging.WithBatchWait(10*time.Millisecond), fastRetry)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "t", &messaging.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handled:
	case <-time.After(3 * time.Second):
		t.Log("not retried within 3s (treated as success?)")
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
