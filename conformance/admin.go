package conformance

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// adminCases are the Admin cases: deleting and purging what was declared.
var adminCases = []testCase{
	{"Admin", "DeleteGroupStartsFresh", adminDeleteGroup},
	{"Admin", "DeleteQueue", adminDeleteQueue},
	{"Admin", "Purge", adminPurge},
	{"Admin", "MissingAndInvalid", adminMissing},
	{"Admin", "InspectAndPeekDoNotConsume", adminPeek},
	{"Admin", "ListenOnDeadLetterQueue", adminListenDLQ},
}

// idle subscribes a handler that succeeds and closes it at once, so that
// the group exists with no consumer connected.
func (e *env) idleGroup(c *messaging.Client, topic, group string) {
	e.Helper()
	s := e.subscribe(c, topic, group, func(context.Context, *messaging.Message) error { return nil })
	if err := s.Close(); err != nil {
		e.Fatalf("close subscription: %v", err)
	}
}

// adminDeleteGroup proves R90: a deleted group loses what it held, and a
// later Subscribe declares it anew, receiving only what is published after.
// The topic's other groups are untouched.
func adminDeleteGroup(e *env) {
	c := e.client()
	adm := c.Admin()
	topic, g, other := e.name("t"), e.name("g"), e.name("o")
	e.idleGroup(c, topic, g)
	keep := &recorder{}
	e.subscribe(c, topic, other, keep.handle)
	e.publish(c, topic, msg("k", "old"))
	e.awaitBodies(keep, "old")
	if err := adm.DeleteGroup(e.ctx, topic, g); err != nil {
		e.Fatalf("DeleteGroup: %v", err)
	}
	e.mustErr("DeleteGroup of the deleted group", adm.DeleteGroup(e.ctx, topic, g), messaging.ErrNotFound)
	_, err := adm.Inspect(e.ctx, topic, g)
	e.mustErr("Inspect of the deleted group", err, messaging.ErrNotFound)

	r := &recorder{}
	e.subscribe(e.client(), topic, g, r.handle)
	e.publish(c, topic, msg("k", "new"))
	if got := e.before(r, "new"); len(got) > 0 {
		e.Errorf("the group, deleted and declared again, received %q: messages of before its deletion", got[0].Body)
	}
	e.awaitBodies(keep, "new") // the other group goes on
}

// adminDeleteQueue proves R91: DeleteQueue deletes a recipient's queue with
// its messages; a later Notify re-creates it, also from a client that had
// declared it before the deletion; a dead-letter queue and a service's
// queue are deleted the same way, and a request to a service whose queue
// was deleted fails with ErrNoResponders.
func adminDeleteQueue(e *env) {
	sender, c := e.client(), e.client()
	adm := c.Admin()
	rcp := e.name("r")
	e.notify(sender, rcp, msg("", "old"))
	if err := adm.DeleteQueue(e.ctx, rcp); err != nil {
		e.Fatalf("DeleteQueue: %v", err)
	}
	e.mustErr("DeleteQueue of the deleted queue", adm.DeleteQueue(e.ctx, rcp), messaging.ErrNotFound)
	_, err := adm.Inspect(e.ctx, rcp, "")
	e.mustErr("Inspect of the deleted queue", err, messaging.ErrNotFound)

	e.notify(sender, rcp, msg("", "new")) // sender had declared the queue: it declares it again
	r := &recorder{}
	e.listen(c, rcp, r.handle)
	if got := e.before(r, "new"); len(got) > 0 {
		e.Errorf("the queue, deleted and created again, delivered %q: a message of before its deletion", got[0].Body)
	}

	// A dead-letter queue: declared by the first dead letter, not by the
	// listener above, which never dead-lettered.
	dlq := messaging.DeadLetterQueue(rcp, "")
	_, err = adm.Inspect(e.ctx, dlq, "")
	e.mustErr("Inspect of the dead-letter queue of a listener that never dead-lettered", err, messaging.ErrNotFound)
	failing := e.name("f")
	e.listen(c, failing, func(context.Context, *messaging.Message) error { return messaging.Permanent(errors.New("no")) })
	e.notify(sender, failing, msg("", "dead"))
	dlq = messaging.DeadLetterQueue(failing, "")
	for { // polling the broker's state until the dead letter is there
		info, err := adm.Inspect(e.ctx, dlq, "")
		if err == nil && info.Messages > 0 {
			break
		}
		if err != nil && !errors.Is(err, messaging.ErrNotFound) {
			e.Fatalf("Inspect(%s): %v", dlq, err)
		}
		select {
		case <-e.ctx.Done():
			e.Fatalf("no dead letter in %s", dlq)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := adm.DeleteQueue(e.ctx, dlq); err != nil {
		e.Errorf("DeleteQueue(%s): %v", dlq, err)
	}
	_, err = adm.Inspect(e.ctx, dlq, "")
	e.mustErr("Inspect of the deleted dead-letter queue", err, messaging.ErrNotFound)

	// A service's queue, once nobody serves it.
	svc := e.name("s")
	s := e.serve(c, svc, func(context.Context, *messaging.Message) (*messaging.Message, error) { return nil, nil })
	if err := s.Close(); err != nil {
		e.Fatalf("close server: %v", err)
	}
	if err := adm.DeleteQueue(e.ctx, messaging.RequestQueue(svc)); err != nil {
		e.Fatalf("DeleteQueue(%s): %v", messaging.RequestQueue(svc), err)
	}
	_, err = e.client().Request(e.ctx, svc, msg("", "ping"))
	e.mustErr("Request to a service whose queue was deleted", err, messaging.ErrNoResponders)
}

// adminPurge proves R92: Purge empties a queue or a group and keeps it
// declared: what is sent afterwards is delivered.
func adminPurge(e *env) {
	c := e.client()
	adm := c.Admin()

	rcp := e.name("r")
	e.notify(c, rcp, msg("", "q-old1"), msg("", "q-old2"))
	if err := adm.Purge(e.ctx, rcp, ""); err != nil {
		e.Fatalf("Purge(%s): %v", rcp, err)
	}
	if info, err := adm.Inspect(e.ctx, rcp, ""); err != nil {
		e.Errorf("Inspect after Purge: %v", err)
	} else if info.Messages != 0 {
		e.Errorf("Inspect after Purge: %d messages, want 0", info.Messages)
	}
	e.notify(c, rcp, msg("", "q-new"))
	r := &recorder{}
	e.listen(c, rcp, r.handle)
	if got := e.before(r, "q-new"); len(got) > 0 {
		e.Errorf("the purged queue delivered %q", got[0].Body)
	}

	topic, g := e.name("t"), e.name("g")
	e.idleGroup(c, topic, g)
	e.publish(c, topic, msg("k", "g-old1"), msg("k", "g-old2"))
	if err := adm.Purge(e.ctx, topic, g); err != nil {
		e.Fatalf("Purge(%s, %s): %v", topic, g, err)
	}
	e.publish(c, topic, msg("k", "g-new"))
	rg := &recorder{}
	e.subscribe(c, topic, g, rg.handle)
	if got := e.before(rg, "g-new"); len(got) > 0 {
		e.Errorf("the purged group delivered %q", got[0].Body)
	}
}

// adminMissing proves R93: on a group or queue that does not exist, every
// Admin method fails with ErrNotFound and creates nothing; bad names are
// ErrInvalid.
func adminMissing(e *env) {
	c := e.client()
	adm := c.Admin()
	topic, q := e.name("t"), e.name("q")
	e.publish(c, topic, msg("", "x")) // the topic exists, none of its groups does
	for round := range 2 {            // the second round proves the first created nothing
		_, err := adm.Inspect(e.ctx, q, "")
		e.mustErr("Inspect of a missing queue", err, messaging.ErrNotFound)
		_, err = adm.Inspect(e.ctx, topic, "nogroup")
		e.mustErr("Inspect of a missing group", err, messaging.ErrNotFound)
		_, err = adm.Peek(e.ctx, q, "", 1)
		e.mustErr("Peek of a missing queue", err, messaging.ErrNotFound)
		_, err = adm.Peek(e.ctx, topic, "nogroup", 1)
		e.mustErr("Peek of a missing group", err, messaging.ErrNotFound)
		e.mustErr("Purge of a missing queue", adm.Purge(e.ctx, q, ""), messaging.ErrNotFound)
		e.mustErr("Purge of a missing group", adm.Purge(e.ctx, topic, "nogroup"), messaging.ErrNotFound)
		if round == 1 {
			e.mustErr("DeleteQueue of a missing queue", adm.DeleteQueue(e.ctx, q), messaging.ErrNotFound)
			e.mustErr("DeleteGroup of a missing group", adm.DeleteGroup(e.ctx, topic, "nogroup"), messaging.ErrNotFound)
		}
	}
	for _, bad := range []string{"", "-x", "a b", "a/b", strings.Repeat("x", 129)} {
		e.mustErr("DeleteQueue("+bad+")", adm.DeleteQueue(e.ctx, bad), messaging.ErrInvalid)
		e.mustErr("DeleteGroup(t, "+bad+")", adm.DeleteGroup(e.ctx, topic, bad), messaging.ErrInvalid)
		e.mustErr("Purge("+bad+")", adm.Purge(e.ctx, bad, ""), messaging.ErrInvalid)
		_, err := adm.Inspect(e.ctx, topic, bad+"/")
		e.mustErr("Inspect(t, "+bad+"/)", err, messaging.ErrInvalid)
	}
	_, err := adm.Peek(e.ctx, topic, "nogroup", 0)
	e.mustErr("Peek of 0 messages", err, messaging.ErrInvalid)
}

// adminPeek proves R93: Inspect counts and Peek reads the waiting messages
// without consuming them or raising their delivery counts; where the
// broker cannot read without counting a delivery, Peek is
// errors.ErrUnsupported.
func adminPeek(e *env) {
	c := e.client()
	adm := c.Admin()
	rcp := e.name("r")
	e.notify(c, rcp, msg("", "p1"), msg("", "p2"))
	info, err := adm.Inspect(e.ctx, rcp, "")
	if err != nil {
		e.Fatalf("Inspect: %v", err)
	}
	if info.Messages != 2 {
		e.Errorf("Inspect: %d messages, want 2", info.Messages)
	}
	if info.Consumers != 0 && info.Consumers != -1 {
		e.Errorf("Inspect: %d consumers, want 0 (or -1: unknown)", info.Consumers)
	}
	for range 2 {
		got, err := adm.Peek(e.ctx, rcp, "", 10)
		if errors.Is(err, errors.ErrUnsupported) {
			e.Logf("Peek is unsupported on %s: %v", e.h.Name, err)
			break
		}
		if err != nil {
			e.Fatalf("Peek: %v", err)
		}
		if len(got) != 2 || string(got[0].Body) != "p1" || string(got[1].Body) != "p2" {
			var bodies []string
			for _, m := range got {
				bodies = append(bodies, string(m.Body))
			}
			e.Errorf("Peek: got %q, want [p1 p2]", bodies)
		}
	}
	if info, err := adm.Inspect(e.ctx, rcp, ""); err != nil || info.Messages != 2 {
		e.Errorf("Inspect after Peek: %+v, %v; want 2 messages", info, err)
	}
	r := &recorder{}
	e.listen(c, rcp, r.handle)
	e.awaitBodies(r, "p1", "p2")
	for _, m := range r.all() {
		if m.Attempt != 1 {
			e.Errorf("message %q: Attempt %d after Inspect and Peek, want 1", m.Body, m.Attempt)
		}
	}
}

// adminListenDLQ proves R94: a dead-letter queue's consumer sends what it
// fails on back to the same queue with the original failure envelope; no
// "<dlq>.dlq" is created.
func adminListenDLQ(e *env) {
	c := e.client()
	adm := c.Admin()
	topic, g := e.name("t"), e.name("g")
	e.subscribe(c, topic, g, func(context.Context, *messaging.Message) error {
		return messaging.Permanent(errors.New("poison"))
	})
	dlq := messaging.DeadLetterQueue(topic, g)
	calls := &recorder{}
	e.listen(c, dlq, func(ctx context.Context, m *messaging.Message) error {
		calls.add(m)
		if len(calls.all()) == 1 {
			return messaging.Permanent(errors.New("the dead-letter consumer fails"))
		}
		return nil
	})
	e.publish(c, topic, msg("k", "bad"))
	e.awaitCount(calls, 2)
	for i, m := range calls.all()[:2] {
		dl, err := messaging.ParseDeadLetter(m)
		if err != nil {
			e.Errorf("call %d: ParseDeadLetter: %v", i+1, err)
			continue
		}
		if dl.ReceivedFrom != topic || dl.Group != g || dl.LastError != "poison" || string(dl.Original.Body) != "bad" {
			e.Errorf("call %d: envelope topic %q group %q error %q body %q; want the original failure (%q, %q, poison, bad)",
				i+1, dl.ReceivedFrom, dl.Group, dl.LastError, dl.Original.Body, topic, g)
		}
	}
	_, err := adm.Inspect(e.ctx, messaging.DeadLetterQueue(dlq, ""), "")
	e.mustErr("Inspect of "+dlq+".dlq", err, messaging.ErrNotFound)
}
