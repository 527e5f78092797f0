package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// crashLoopCases are the CrashLoop cases: deliveries whose count exceeds
// MaxAttempts, and dead letters that must be shrunk to fit (R62–R64).
var crashLoopCases = []testCase{
	{"CrashLoop", "OverMaxAttemptsDeadLetteredWithoutHandler", crashLoopOverMaxAttempts},
	{"CrashLoop", "DeadLetterShrunkToFit", crashLoopDeadLetterShrunkToFit},
	{"CrashLoop", "UnsendableDeadLetterSettles", crashLoopUnsendableDeadLetter},
}

// crashLoopOverMaxAttempts proves R62: a message that crashes every member
// it reaches (simulated by abandoning each member without acknowledging:
// its connections cut) is handled MaxAttempts times, then its next
// delivery is dead-lettered without calling the handler, the envelope
// stating at least the MaxAttempts deliveries; its key moves on.
func crashLoopOverMaxAttempts(e *env) {
	const maxAttempts = 2
	topic, group := e.name("t"), e.name("g")
	policy := FastRetry
	policy.MaxAttempts = maxAttempts
	pub := e.client()
	dls := e.listenDeadLetters(e.client(), messaging.DeadLetterQueue(topic, group))
	a := newAttempts()
	var restores []func()
	for i := range maxAttempts {
		f, faulty := e.faultyClients()
		restores = append(restores, f.Restore)
		held := make(chan struct{})
		var once sync.Once
		hold := e.gate() // the member "crashed": its handler never returns in the case
		e.subscribe(faulty(), topic, group, func(ctx context.Context, m *messaging.Message) error {
			if string(m.Body) == "poison" {
				a.add(m)
				once.Do(func() { close(held) })
				hold.wait(ctx)
			}
			return nil
		}, messaging.WithRetry(policy))
		if i == 0 {
			e.publish(pub, topic, msg("k", "poison"), msg("k", "next"))
		}
		e.await(fmt.Sprintf("crash %d: the member to hold the poison message", i+1), held)
		f.Cut()
	}
	r := &recorder{}
	e.subscribe(e.client(), topic, group, r.handle, messaging.WithRetry(policy))
	dl := dls.await(e, "poison")
	e.awaitBodies(r, "next")
	if r.has("poison") {
		e.Errorf("the handler was called for a delivery over MaxAttempts")
	}
	if got := a.of("poison"); !slices.Equal(got, []int{1, 2}) {
		e.Errorf("attempts of the crashing members: %v, want [1 2]", got)
	}
	// The envelope states the deliveries that reached a member before:
	// at least the MaxAttempts that reached a handler, more when the
	// broker also delivered the message to a member that was already
	// cut off (at-least-once: its delivery is counted, no handler ran).
	if dl.LastAttempt < maxAttempts {
		e.Errorf("dead letter says %d attempts, want at least %d (the deliveries that reached a handler)", dl.LastAttempt, maxAttempts)
	}
	if dl.LastError == "" {
		e.Errorf("dead letter of a crash loop has no error text")
	}
	for _, restore := range restores {
		restore()
	}
}

// crashLoopDeadLetterShrunkToFit proves R63: a message at the transport's
// limit (MaxHeaders headers where the transport limits headers, else a
// body of MaxMessageSize) whose dead letter does not fit is dead-lettered
// with what must go cut, as the envelope's Truncated says; the key moves on.
func crashLoopDeadLetterShrunkToFit(e *env) {
	c := e.client()
	caps := c.Capabilities()
	topic, group := e.name("t"), e.name("g")
	dls := e.listenDeadLetters(e.client(), messaging.DeadLetterQueue(topic, group))
	big := &messaging.Message{ID: "big-" + e.name("m"), Key: "k", Source: "s"}
	var wantCut string
	switch {
	case caps.MaxHeaders > 0:
		big.Body = []byte("headers")
		big.Headers = map[string]string{}
		for i := range caps.MaxHeaders {
			big.Headers[fmt.Sprintf("h%03d", i)] = "v"
		}
		wantCut = messaging.TruncatedHeaders
	case caps.MaxMessageSize > 0:
		n := caps.MaxMessageSize - len(big.ID) - len(big.Key) - len(big.Source)
		big.Body = bytes.Repeat([]byte("b"), n)
		copy(big.Body, "body")
		wantCut = messaging.TruncatedBody
	default:
		e.Fatalf("%s reports neither MaxHeaders nor MaxMessageSize: every transport has a limit", e.h.Name)
	}
	r := &recorder{}
	longErr := strings.Repeat("e", 3000)
	e.subscribe(c, topic, group, func(ctx context.Context, m *messaging.Message) error {
		if m.ID == big.ID {
			return messaging.Permanent(errors.New(longErr))
		}
		return r.handle(ctx, m)
	})
	e.publish(c, topic, big)
	e.publish(c, topic, msg("k", "next"))
	e.awaitBodies(r, "next")
	var dl *messaging.DeadLetter
	e.waitUntil("the dead letter", &dls.notifier, func() bool {
		dls.mu.Lock()
		defer dls.mu.Unlock()
		for _, d := range dls.got {
			if d.Original.ID == big.ID {
				dl = d
				return true
			}
		}
		return false
	})
	if !slices.Contains(dl.Truncated, wantCut) {
		e.Errorf("dead letter Truncated = %v, want it to list %q", dl.Truncated, wantCut)
	}
	if !dl.Permanent || dl.LastAttempt != 1 {
		e.Errorf("envelope: permanent %v, attempts %d; want true, 1", dl.Permanent, dl.LastAttempt)
	}
	if !strings.HasPrefix(longErr, dl.LastError) || dl.LastError == "" {
		e.Errorf("the error text was not cut from its end: %d bytes", len(dl.LastError))
	}
	switch wantCut {
	case messaging.TruncatedHeaders:
		for k, v := range dl.Original.Headers {
			if big.Headers[k] != v {
				e.Errorf("dead letter header %q = %q, not the original's", k, v)
			}
		}
		if len(dl.Original.Headers) >= len(big.Headers) {
			e.Errorf("dead letter kept %d of %d headers, yet says they were cut", len(dl.Original.Headers), len(big.Headers))
		}
	case messaging.TruncatedBody:
		if !bytes.HasPrefix(big.Body, dl.Original.Body) || len(dl.Original.Body) >= len(big.Body) || len(dl.Original.Body) == 0 {
			e.Errorf("dead letter body: %d bytes, want a non-empty prefix shorter than the original's %d", len(dl.Original.Body), len(big.Body))
		}
	}
}

// crashLoopUnsendableDeadLetter proves R64: when the broker refuses a dead
// letter for good (ErrMessageTooLarge, ErrInvalid), the message is
// acknowledged without it (an error logged and counted): it is not
// retried and its key moves on.
func crashLoopUnsendableDeadLetter(e *env) {
	topic, group := e.name("t"), e.name("g")
	dlq := messaging.DeadLetterQueue(topic, group)
	c := e.clientOn(&refusingTransport{Transport: e.transport(), refuse: transport.Queue(dlq)})
	a := newAttempts()
	r := &recorder{}
	e.subscribe(c, topic, group, func(ctx context.Context, m *messaging.Message) error {
		if string(m.Body) == "poison" {
			a.add(m)
			return messaging.Permanent(errors.New("poison"))
		}
		return r.handle(ctx, m)
	})
	pub := e.client()
	e.publish(pub, topic, msg("k", "poison"), msg("k", "next"))
	e.awaitBodies(r, "next")
	e.publish(pub, topic, msg("k", "barrier"))
	e.awaitBodies(r, "barrier")
	if got := a.of("poison"); len(got) != 1 {
		e.Errorf("the poison message was handled %d times, want once (settled without its dead letter)", len(got))
	}
}

// refusingTransport refuses every send to one address, as a broker whose
// own limits are lower than the transport reports would.
type refusingTransport struct {
	transport.Transport
	refuse transport.Address
}

func (t *refusingTransport) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	if to == t.refuse {
		return fmt.Errorf("%w: the broker refuses messages to %s", transport.ErrMessageTooLarge, to)
	}
	return t.Transport.Send(ctx, to, msgs)
}
