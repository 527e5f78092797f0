package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// nameCalls returns one call per API that takes a name, each using bad in
// place of that name.
func (e *env) nameCalls(c *messaging.Client, bad string) map[string]func() error {
	topic, group, svc := e.name("t"), e.name("g"), e.name("s")
	h := (&recorder{}).handle
	m := msg("", "x")
	return map[string]func() error{
		"Publish topic": func() error { return c.Publish(e.ctx, bad, m) },
		"Notify":        func() error { return c.Notify(e.ctx, bad, m) },
		"Subscribe topic": func() error {
			_, err := c.Subscribe(e.ctx, bad, group, h)
			return err
		},
		"Subscribe group": func() error {
			_, err := c.Subscribe(e.ctx, topic, bad, h)
			return err
		},
		"Listen": func() error {
			_, err := c.Listen(e.ctx, bad, h)
			return err
		},
		"Serve": func() error {
			_, err := c.Serve(e.ctx, bad, echo)
			return err
		},
		"Respond topic": func() error {
			_, err := c.Respond(e.ctx, bad, group, echo)
			return err
		},
		"Respond group": func() error {
			_, err := c.Respond(e.ctx, topic, bad, echo)
			return err
		},
		"Request": func() error {
			_, err := c.Request(e.ctx, bad, m)
			return err
		},
		"RequestAsync": func() error {
			_, err := c.RequestAsync(e.ctx, bad, m)
			return err
		},
		"Gather": func() error {
			_, err := c.Gather(e.ctx, bad, m, messaging.GatherTimeout(time.Second))
			return err
		},
		"WithDeadLetterQueue": func() error {
			_, err := c.Subscribe(e.ctx, topic, group, h, messaging.WithDeadLetterQueue(bad))
			return err
		},
		"Serve service": func() error {
			_, err := c.Serve(e.ctx, svc, echo, messaging.WithDeadLetterQueue(bad))
			return err
		},
	}
}

// badEmptyNames proves R40: an empty name is ErrInvalid, for every call.
func badEmptyNames(e *env) {
	c := e.client()
	for what, call := range e.nameCalls(c, "") {
		if what == "WithDeadLetterQueue" || what == "Serve service" {
			continue // empty means the default dead-letter queue
		}
		e.mustErr(what+`("")`, e.noPanic(what, call), messaging.ErrInvalid)
	}
}

// badInvalidNames proves R40: a malformed or over-long name is ErrInvalid,
// for every call.
func badInvalidNames(e *env) {
	c := e.client()
	bad := []string{"-lead", ".lead", "_lead", "a b", "a/b", "a:b", "a*", "a#b", "ä", "a\x00b", "a\xffb", strings.Repeat("a", messaging.MaxNameLength+1)}
	for _, b := range bad {
		for what, call := range e.nameCalls(c, b) {
			e.mustErr(fmt.Sprintf("%s(%q)", what, b), e.noPanic(what, call), messaging.ErrInvalid)
		}
	}
}

// badNilHandler proves R41: a nil handler is ErrInvalid.
func badNilHandler(e *env) {
	c := e.client()
	calls := map[string]func() error{
		"Subscribe": func() error { _, err := c.Subscribe(e.ctx, e.name("t"), e.name("g"), nil); return err },
		"Listen":    func() error { _, err := c.Listen(e.ctx, e.name("r"), nil); return err },
		"Serve":     func() error { _, err := c.Serve(e.ctx, e.name("s"), nil); return err },
		"Respond":   func() error { _, err := c.Respond(e.ctx, e.name("t"), e.name("g"), nil); return err },
	}
	for what, call := range calls {
		e.mustErr(what+" with a nil handler", e.noPanic(what, call), messaging.ErrInvalid)
	}
}

// messageCalls returns one call per API that sends a message, sending ms.
func (e *env) messageCalls(c *messaging.Client, ms ...*messaging.Message) map[string]func() error {
	svc, topic := e.name("s"), e.name("t")
	return map[string]func() error{
		"Publish": func() error { return c.Publish(e.ctx, topic, ms...) },
		"Notify":  func() error { return c.Notify(e.ctx, e.name("r"), ms...) },
		"Request": func() error {
			_, err := c.Request(e.ctx, svc, ms[0])
			return err
		},
		"RequestAsync": func() error {
			_, err := c.RequestAsync(e.ctx, svc, ms[0])
			return err
		},
		"Gather": func() error {
			_, err := c.Gather(e.ctx, topic, ms[0], messaging.GatherTimeout(time.Second))
			return err
		},
	}
}

// serveEcho makes the case's service exist, so that request errors come
// from the message, not from a missing responder.
func (e *env) serveEcho(c *messaging.Client) {
	e.serve(c, e.name("s"), echo)
}

// badNilMessage proves R41: a nil message is ErrInvalid; ParseDeadLetter
// of nil or of a message without an envelope is ErrInvalid.
func badNilMessage(e *env) {
	c := e.client()
	e.serveEcho(c)
	for what, call := range e.messageCalls(c, nil) {
		e.mustErr(what+"(nil)", e.noPanic(what, call), messaging.ErrInvalid)
	}
	e.mustErr("Publish(ok, nil)", c.Publish(e.ctx, e.name("t"), msg("", "ok"), nil), messaging.ErrInvalid)
	_, err := messaging.ParseDeadLetter(nil)
	e.mustErr("ParseDeadLetter(nil)", err, messaging.ErrInvalid)
	_, err = messaging.ParseDeadLetter(msg("", "plain"))
	e.mustErr("ParseDeadLetter(plain)", err, messaging.ErrInvalid)
}

// badReservedHeader proves R42: headers with the reserved prefix "sb-",
// in any case, are ErrInvalid on every sent message; a responder's reply
// with one reaches the requester as a *RemoteError.
func badReservedHeader(e *env) {
	c := e.client()
	e.serveEcho(c)
	for _, name := range []string{"sb-x", "SB-X", "Sb-deadline", "sb-"} {
		m := &messaging.Message{Body: []byte("x"), Headers: map[string]string{"ok": "1", name: "v"}}
		for what, call := range e.messageCalls(c, m) {
			e.mustErr(fmt.Sprintf("%s with header %q", what, name), e.noPanic(what, call), messaging.ErrInvalid)
		}
	}
	svc := e.name("bad")
	e.serve(c, svc, func(context.Context, *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Headers: map[string]string{"sb-error": "forged"}}, nil
	})
	_, err := c.Request(e.ctx, svc, msg("", "x"))
	var re *messaging.RemoteError
	if !errors.As(err, &re) || re.Message == "forged" {
		e.Errorf("a reply with a reserved header: %v, want a *RemoteError about the invalid reply", err)
	}
}

// badInvalidHeader proves R42: an empty, over-long or invalid UTF-8 header
// name, or a value that is not valid UTF-8, is ErrInvalid.
func badInvalidHeader(e *env) {
	c := e.client()
	e.serveEcho(c)
	bad := []map[string]string{
		{"": "v"},
		{"\xff\xfe": "v"},
		{"a\xc3": "v"},
		{strings.Repeat("h", messaging.MaxHeaderNameLength+1): "v"},
		{"ok": "\xff"},
	}
	for _, h := range bad {
		m := &messaging.Message{Body: []byte("x"), Headers: h}
		for what, call := range e.messageCalls(c, m) {
			e.mustErr(fmt.Sprintf("%s with headers %q", what, h), e.noPanic(what, call), messaging.ErrInvalid)
		}
	}
}

// badHugeHeaders proves R43: headers over MaxHeadersSize bytes in all, or
// more headers than the transport's MaxHeaders, are ErrMessageTooLarge.
func badHugeHeaders(e *env) {
	c := e.client()
	e.serveEcho(c)
	one := map[string]string{"big": strings.Repeat("v", messaging.MaxHeadersSize+1)}
	many := map[string]string{}
	for i := 0; i < messaging.MaxHeadersSize/100+1; i++ {
		many[fmt.Sprintf("h%05d", i)] = strings.Repeat("v", 100)
	}
	cases := []map[string]string{one, many}
	if max := c.Capabilities().MaxHeaders; max > 0 {
		count := map[string]string{}
		for i := 0; i <= max; i++ {
			count[fmt.Sprint("h", i)] = "v"
		}
		cases = append(cases, count)
	}
	for i, h := range cases {
		m := &messaging.Message{Body: []byte("x"), Headers: h}
		for what, call := range e.messageCalls(c, m) {
			e.mustErr(fmt.Sprintf("%s with header set #%d", what, i), e.noPanic(what, call), messaging.ErrMessageTooLarge)
		}
	}
}

// badMessageTooLarge proves R43: a message over the transport's
// MaxMessageSize is ErrMessageTooLarge, before anything is sent.
func badMessageTooLarge(e *env) {
	c := e.client()
	max := c.Capabilities().MaxMessageSize
	if max <= 0 {
		e.Fatalf("%s reports no MaxMessageSize: every transport has a limit", e.h.Name)
	}
	e.serveEcho(c)
	topic := e.name("t")
	r := &recorder{}
	e.subscribe(c, topic, e.name("g"), r.handle)
	big := &messaging.Message{Key: "k", Body: make([]byte, max+1)}
	for what, call := range e.messageCalls(c, big) {
		e.mustErr(what+" of a message over MaxMessageSize", e.noPanic(what, call), messaging.ErrMessageTooLarge)
	}
	e.publish(c, topic, msg("k", "marker"))
	for _, m := range e.before(r, "marker") {
		e.Errorf("a message of %d bytes was delivered", len(m.Body))
	}
}

// badInvalidOptions proves R44: zero, negative or contradictory options
// are ErrInvalid, at New, Subscribe or Gather.
func badInvalidOptions(e *env) {
	_, err := messaging.New(nil)
	e.mustErr("New(nil)", err, messaging.ErrInvalid)
	clientOpts := map[string]messaging.ClientOption{
		"WithDrainTimeout(0)":                        messaging.WithDrainTimeout(0),
		"WithDrainTimeout(-1)":                       messaging.WithDrainTimeout(-time.Second),
		"WithRequestTimeout(0)":                      messaging.WithRequestTimeout(0),
		"WithRequestTimeout(-1)":                     messaging.WithRequestTimeout(-time.Second),
		"WithLogger(nil)":                            messaging.WithLogger(nil),
		"WithSubscribeDefaults(WithMaxInFlight(0))":  messaging.WithSubscribeDefaults(messaging.WithMaxInFlight(0)),
		"WithSubscribeDefaults(WithMaxAttempts(-1))": messaging.WithSubscribeDefaults(messaging.WithMaxAttempts(-1)),
		"WithSendMiddleware(nil)":                    messaging.WithSendMiddleware(nil),
		"WithSubscribeDefaults(WithMiddleware(nil))": messaging.WithSubscribeDefaults(messaging.WithMiddleware(nil)),
		"a nil ClientOption":                         nil,
	}
	for what, o := range clientOpts {
		tr := e.transport()
		err := e.noPanic("New", func() error { _, err := messaging.New(tr, o); return err })
		e.mustErr("New with "+what, err, messaging.ErrInvalid)
	}
	c := e.client()
	ok := FastRetry
	retry := func(f func(p *messaging.RetryPolicy)) messaging.SubscribeOption {
		p := ok
		f(&p)
		return messaging.WithRetry(p)
	}
	subOpts := map[string]messaging.SubscribeOption{
		"WithMaxInFlight(0)":       messaging.WithMaxInFlight(0),
		"WithMaxInFlight(-1)":      messaging.WithMaxInFlight(-1),
		"WithMaxAttempts(0)":       messaging.WithMaxAttempts(0),
		"MaxAttempts -1":           retry(func(p *messaging.RetryPolicy) { p.MaxAttempts = -1 }),
		"InitialBackoff -1":        retry(func(p *messaging.RetryPolicy) { p.InitialBackoff = -time.Millisecond }),
		"MaxBackoff < Initial":     retry(func(p *messaging.RetryPolicy) { p.MaxBackoff = p.InitialBackoff / 2 }),
		"Multiplier 0.5":           retry(func(p *messaging.RetryPolicy) { p.Multiplier = 0.5 }),
		"Jitter -0.1":              retry(func(p *messaging.RetryPolicy) { p.Jitter = -0.1 }),
		"Jitter 1.5":               retry(func(p *messaging.RetryPolicy) { p.Jitter = 1.5 }),
		"WithDeadLetterQueue(bad)": messaging.WithDeadLetterQueue("bad name"),
		"WithMiddleware(nil)":      messaging.WithMiddleware(nil),
		"a nil SubscribeOption":    nil,
	}
	h := (&recorder{}).handle
	for what, o := range subOpts {
		err := e.noPanic("Subscribe", func() error { _, err := c.Subscribe(e.ctx, e.name("t"), e.name("g"), h, o); return err })
		e.mustErr("Subscribe with "+what, err, messaging.ErrInvalid)
		err = e.noPanic("Listen", func() error { _, err := c.Listen(e.ctx, e.name("r"), h, o); return err })
		e.mustErr("Listen with "+what, err, messaging.ErrInvalid)
		err = e.noPanic("Serve", func() error { _, err := c.Serve(e.ctx, e.name("s"), echo, o); return err })
		e.mustErr("Serve with "+what, err, messaging.ErrInvalid)
		err = e.noPanic("Respond", func() error { _, err := c.Respond(e.ctx, e.name("t"), e.name("g"), echo, o); return err })
		e.mustErr("Respond with "+what, err, messaging.ErrInvalid)
	}
	// Zero fields of a RetryPolicy take the defaults (R44).
	for what, p := range map[string]messaging.RetryPolicy{
		"WithRetry(zero)":                 {},
		"WithRetry({MaxAttempts: 3})":     {MaxAttempts: 3},
		"WithRetry({InitialBackoff: 1m})": {InitialBackoff: time.Minute},
	} {
		s, err := c.Subscribe(e.ctx, e.name("t"), e.name("z"), h, messaging.WithRetry(p))
		if err != nil {
			e.Errorf("Subscribe with %s: %v; zero fields take the defaults", what, err)
			continue
		}
		s.Close()
	}
	gatherOpts := map[string]messaging.GatherOption{
		"WantReplies(-1)":    messaging.WantReplies(-1),
		"GatherTimeout(0)":   messaging.GatherTimeout(0),
		"GatherTimeout(-1s)": messaging.GatherTimeout(-time.Second),
	}
	for what, o := range gatherOpts {
		err := e.noPanic("Gather", func() error { _, err := c.Gather(e.ctx, e.name("t"), msg("", "x"), o); return err })
		e.mustErr("Gather with "+what, err, messaging.ErrInvalid)
	}
}

// badInvalidBatch proves R45: a batch with one invalid message sends
// none of its messages.
func badInvalidBatch(e *env) {
	c := e.client()
	topic := e.name("t")
	r := &recorder{}
	e.subscribe(c, topic, e.name("g"), r.handle)
	bad := &messaging.Message{Key: "k", Body: []byte("bad"), Headers: map[string]string{"sb-x": "1"}}
	err := c.Publish(e.ctx, topic, msg("k", "good1"), bad, msg("k", "good2"))
	e.mustErr("Publish of a batch with an invalid message", err, messaging.ErrInvalid)
	e.publish(c, topic, msg("k", "marker"))
	for _, m := range e.before(r, "marker") {
		e.Errorf("received %q from a batch that was rejected", m.Body)
	}
}
