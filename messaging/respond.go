package messaging

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// ReplyHandler serves one request and returns its reply. Returning an
// error sends the error back: the requester gets a *RemoteError (attach a
// code with WithCode). A nil reply with a nil error sends an empty reply.
// A panic is sent back as an error too.
type ReplyHandler func(ctx context.Context, req *Message) (*Message, error)

// requestQueue is the queue a service's requests go to.
func requestQueue(service string) string { return service + ".rpc" }

// Serve answers the requests sent to service with Request and
// RequestAsync. Several Serve calls, in one process or many, share the
// requests. Requests whose requester has given up (their deadline passed)
// are dropped unanswered.
func (c *Client) Serve(ctx context.Context, service string, h ReplyHandler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validName("service", service); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, invalid("nil handler")
	}
	q := requestQueue(service)
	return c.subscribe(ctx, transport.Queue(q), "", service, DeadLetterQueue(q, ""), c.replying(service, service, h), opts, false)
}

// Respond answers the requests published to topic with Gather, as a
// member of group: each group answers once, so a gather collects one reply
// per responding group.
func (c *Client) Respond(ctx context.Context, topic, group string, h ReplyHandler, opts ...SubscribeOption) (*Subscription, error) {
	if err := validName("topic", topic); err != nil {
		return nil, err
	}
	if err := validName("group", group); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, invalid("nil handler")
	}
	return c.subscribe(ctx, transport.Topic(topic), group, topic, DeadLetterQueue(topic, group), c.replying(topic, group, h), opts, false)
}

// replying turns a ReplyHandler into a Handler that sends its reply,
// marked with responder (the group of a Respond, the service of a Serve)
// in the reserved header sb-responder. Only a failure to send the reply is
// a handler error (and so retried); a failure that retrying cannot fix (a
// reply the transport refuses as too large or invalid) is Permanent, so
// the request is dead-lettered at once.
func (c *Client) replying(service, responder string, h ReplyHandler) Handler {
	return func(ctx context.Context, req *Message) error {
		if dl, ok := req.reserved[hdrDeadline]; ok {
			if ms, err := strconv.ParseInt(dl, 10, 64); err == nil && time.Now().UnixMilli() > ms {
				c.log.Debug("switchboard: request expired before it was served; dropped", "service", service, "id", req.ID)
				return nil
			}
		}
		reply, err := callReply(ctx, h, req)
		if req.ReplyTo == "" {
			return nil // a one-way message: nobody waits for a reply
		}
		var tm *transport.Message
		if err != nil {
			tm = errorReply(err, responder)
		} else {
			if reply == nil {
				reply = &Message{}
			}
			if tm, err = c.prepare(reply, time.Now()); err != nil {
				// The reply itself is bad: tell the requester.
				tm = errorReply(fmt.Errorf("invalid reply: %w", err), responder)
			} else {
				tm.Headers = withHeader(tm.Headers, hdrResponder, responder)
			}
		}
		tm.CorrelationID = req.CorrelationID
		tm.ReplyTo = ""
		err = c.transmitFit(ctx, "reply", transport.Reply(req.ReplyTo), []*transport.Message{tm}, func(m *transport.Message) error {
			c.fitReply(m)
			return c.checkSize(m)
		})
		if err != nil && permanentSendError(err) {
			return Permanent(fmt.Errorf("switchboard: reply to %s cannot be sent: %w", req.ID, err))
		}
		return err
	}
}

// errorReply returns a reply carrying a responder's error.
func errorReply(err error, responder string) *transport.Message {
	h := map[string]string{hdrError: errorText(err), hdrResponder: responder}
	var ce *codedError
	if errors.As(err, &ce) {
		h[hdrErrorCode] = ce.code
	}
	return &transport.Message{ID: newID(), Time: time.Now(), Headers: h}
}

// fitReply makes a reply fit the transport's limits, which the headers the
// client adds after the responder's own size check (correlation ID,
// responder, trace context) may pass: a reply that does not fit is
// replaced by an error reply saying so (the requester gets a
// *RemoteError matching nothing but its text), and an error text too long
// is cut.
func (c *Client) fitReply(tm *transport.Message) {
	err := c.checkSize(tm)
	if err == nil {
		return
	}
	if _, isErr := tm.Headers[hdrError]; !isErr {
		er := errorReply(fmt.Errorf("reply not sent: %w", err), tm.Headers[hdrResponder])
		er.CorrelationID = tm.CorrelationID
		for k, v := range tm.Headers { // keep the trace context
			if !isReserved(k) && len(er.Headers) < 8 {
				er.Headers[k] = v
			}
		}
		*tm = *er
	}
	if limit := c.caps.MaxMessageSize; limit > 0 {
		if over := tm.Size() - limit; over > 0 {
			text := tm.Headers[hdrError]
			tm.Headers[hdrError] = truncateUTF8(text, max(0, len(text)-over))
		}
	}
}

func callReply(ctx context.Context, h ReplyHandler, req *Message) (reply *Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			reply, err = nil, fmt.Errorf("responder panicked: %v", r)
		}
	}()
	return h(ctx, req)
}

func errorText(err error) string {
	s := err.Error()
	if len(s) > maxErrorText {
		s = s[:maxErrorText]
	}
	return s
}

// remoteError returns the responder's error carried by a reply, or nil.
func remoteError(service string, m *Message) *RemoteError {
	text, ok := m.reserved[hdrError]
	if !ok {
		return nil
	}
	return &RemoteError{Service: service, Message: text, Code: m.reserved[hdrErrorCode], Responder: m.Responder}
}
