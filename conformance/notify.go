package conformance

import (
	"fmt"
)

// notifyBeforeRecipientExists proves R9: a notification sent before its
// recipient ever listened is held and delivered when it listens.
func notifyBeforeRecipientExists(e *env) {
	sender := e.client()
	rcpt := e.name("r")
	want := seq("n", 5)
	for _, b := range want {
		e.notify(sender, rcpt, msg("k", b))
	}
	listener := e.client()
	r := &recorder{}
	e.listen(listener, rcpt, r.handle)
	e.awaitBodies(r, want...)
	checkFirstSeenOrder(e, r.all(), want)
}

// notifySharedByListeners proves R10: the listeners of one recipient share
// its notifications, each delivered to one of them.
func notifySharedByListeners(e *env) {
	sender, l1, l2 := e.client(), e.client(), e.client()
	rcpt := e.name("r")
	r := &recorder{}
	e.listen(l1, rcpt, r.handle)
	e.listen(l2, rcpt, r.handle)
	want := seq("n", 30)
	for i, b := range want {
		e.notify(sender, rcpt, msg(fmt.Sprint("k", i), b))
	}
	e.awaitBodies(r, want...)
}

// notifyHeldWhileListenerOffline proves R9: notifications sent while the
// recipient's only listener is stopped wait for the next listener.
func notifyHeldWhileListenerOffline(e *env) {
	sender := e.client()
	rcpt := e.name("r")
	l1 := e.client()
	r1 := &recorder{}
	s := e.listen(l1, rcpt, r1.handle)
	e.notify(sender, rcpt, msg("k", "live"))
	e.awaitBodies(r1, "live")
	if err := s.Close(); err != nil {
		e.Fatalf("close listener: %v", err)
	}
	want := seq("offline", 5)
	for _, b := range want {
		e.notify(sender, rcpt, msg("k", b))
	}
	l2 := e.client()
	r2 := &recorder{}
	e.listen(l2, rcpt, r2.handle)
	e.awaitBodies(r2, want...)
}
