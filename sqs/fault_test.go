package sqs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/transport"
)

// TestEmulatorRestart stops the emulator during a run and starts it again
// on the same port. While it is down, Send fails with ErrUnavailable and
// Receive keeps waiting; once it is back, the subscriptions declare their
// queues, topic and subscription again by themselves and traffic resumes.
// Once a subscription has re-declared its queue, nothing sent from then
// on is lost. The emulator keeps everything in memory: messages held when
// it stopped, and messages sent after the restart but before a
// subscription re-declared its queue (Send returns nil for a topic whose
// subscription queue is not back yet), are lost; the test asserts no
// delivery for those, only logs them. README.md's "Faults" says the same.
//
// It runs its own emulator, so that it disturbs no other test and runs
// even when SWITCHBOARD_SQS_ENDPOINT names a broker it cannot restart.
func TestEmulatorRestart(t *testing.T) {
	emu, err := startEmulator(0)
	if err != nil {
		testenv.Missing(t, "sqs", "cannot start a private fauxqs emulator for the restart test: %v", err)
	}
	defer func() { emu.Stop() }()
	ep := emu.Endpoint()
	tr := openURL(t, ep, "")
	defer tr.Close()
	ctx := context.Background()
	p := "sbt-restart-"
	topic, q := transport.Topic(p+"events"), transport.Queue(p+"jobs")
	ts, err := tr.Subscribe(ctx, topic, "g", transport.SubscribeOptions{MaxInFlight: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	qs, err := tr.Subscribe(ctx, q, "", transport.SubscribeOptions{MaxInFlight: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer qs.Close()

	type result struct {
		ids []string
		err error
	}
	// consume acks and reports what each subscription receives.
	consume := func(s transport.Subscription) <-chan result {
		ch := make(chan result, 100)
		go func() {
			defer close(ch)
			for {
				ms, err := s.Receive(ctx, 10)
				if err != nil {
					ch <- result{err: err}
					return
				}
				var ids []string
				var acks []any
				for _, m := range ms {
					ids = append(ids, m.ID)
					acks = append(acks, m.AckID)
				}
				_ = s.Ack(ctx, acks) // acks of pre-restart deliveries may fail
				ch <- result{ids: ids}
			}
		}()
		return ch
	}
	tch, qch := consume(ts), consume(qs)
	waitFor := func(ch <-chan result, id string, d time.Duration) bool {
		tm := time.NewTimer(d)
		defer tm.Stop()
		for {
			select {
			case r := <-ch:
				if r.err != nil {
					t.Fatalf("receive: %v", r.err)
				}
				for _, got := range r.ids {
					if got == id {
						return true
					}
				}
			case <-tm.C:
				return false
			}
		}
	}
	send := func(to transport.Address, id string) error {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return tr.Send(sctx, to, []*transport.Message{{ID: id, Body: []byte(id)}})
	}
	for _, to := range []transport.Address{topic, q} {
		if err := send(to, "before-"+to.Name); err != nil {
			t.Fatal(err)
		}
	}
	if !waitFor(tch, "before-"+topic.Name, 10*time.Second) || !waitFor(qch, "before-"+q.Name, 10*time.Second) {
		t.Fatal("messages before the restart not received")
	}

	// Down: typed errors, Receive keeps waiting.
	emu.Stop()
	t.Logf("emulator stopped (port %d)", emu.Port)
	for _, to := range []transport.Address{topic, q} {
		err := send(to, "down")
		if !errors.Is(err, transport.ErrUnavailable) {
			t.Fatalf("send to %s while down: want ErrUnavailable, got %v", to, err)
		}
		t.Logf("send to %s while down: %v", to, err)
	}
	if err := tr.Declare(ctx, transport.Queue(p+"other")); !errors.Is(err, transport.ErrUnavailable) {
		t.Fatalf("declare while down: want ErrUnavailable, got %v", err)
	}

	// Up again on the same port, empty.
	port := emu.Port
	if emu, err = startEmulator(port); err != nil {
		t.Fatalf("restarting the emulator on port %d: %v", port, err)
	}
	t.Logf("emulator restarted on port %d (all its state is gone)", emu.Port)

	// Keep sending until a message sent after the restart arrives: the
	// first ones may be lost while the subscriptions re-declare.
	resumed := func(to transport.Address, ch <-chan result) {
		deadline := time.Now().Add(60 * time.Second)
		var lost []string
		for i := 0; ; i++ {
			id := fmt.Sprintf("after-%d", i)
			err := send(to, id)
			if err == nil && waitFor(ch, id, 2*time.Second) {
				t.Logf("%s resumed: %s received; lost while re-declaring: %v", to, id, lost)
				return
			}
			switch {
			case err == nil:
				lost = append(lost, id+" (accepted, never delivered)")
			case errors.Is(err, transport.ErrNotFound):
				lost = append(lost, id+" (ErrNotFound: queue not re-declared yet)")
			case errors.Is(err, transport.ErrUnavailable):
				lost = append(lost, id+" (ErrUnavailable)")
			default:
				t.Fatalf("send to %s after restart: untyped error %v", to, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not resume within 60s; attempts: %v", to, lost)
			}
			if err != nil {
				time.Sleep(200 * time.Millisecond) // paced retries of a failed send
			}
		}
	}
	resumed(topic, tch)
	resumed(q, qch)

	// Once a subscription has re-declared its queue, nothing is lost.
	for _, c := range []struct {
		to transport.Address
		ch <-chan result
	}{{topic, tch}, {q, qch}} {
		for i := range 10 {
			id := fmt.Sprintf("resumed-%d", i)
			if err := send(c.to, id); err != nil {
				t.Fatalf("send %s to %s after resuming: %v", id, c.to, err)
			}
			if !waitFor(c.ch, id, 10*time.Second) {
				t.Fatalf("%s: %s sent after resuming was not delivered", c.to, id)
			}
		}
	}
}
