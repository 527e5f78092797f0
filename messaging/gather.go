package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/transport"
	"go.opentelemetry.io/otel/attribute"
)

// Gathered holds the replies a Gather collected, one per responder.
type Gathered struct {
	// Replies are the successful replies, in arrival order; each one's
	// Responder names its group.
	Replies []*Message
	// Errors are the errors responders returned, in arrival order.
	Errors []*RemoteError
}

// Count returns how many replies arrived, errors included.
func (g *Gathered) Count() int { return len(g.Replies) + len(g.Errors) }

// GatherOption configures Gather.
type GatherOption func(*gatherOptions)

type gatherOptions struct {
	want    int
	timeout time.Duration
}

// WantReplies makes Gather return as soon as n replies (errors included)
// have arrived. Without it, Gather collects until its deadline.
func WantReplies(n int) GatherOption { return func(o *gatherOptions) { o.want = n } }

// GatherTimeout sets how long Gather collects when ctx has no earlier
// deadline. The default is the client's request timeout.
func GatherTimeout(d time.Duration) GatherOption { return func(o *gatherOptions) { o.timeout = d } }

// gatherer collects the replies of one Gather, at most one per responder.
type gatherer struct {
	topic  string
	want   int
	mu     sync.Mutex
	got    Gathered
	seen   map[string]struct{} // responders (or, unnamed, reply IDs) counted
	full   chan struct{}
	isFull bool
}

// deliver counts a reply unless its responder's was counted already: a
// group answers once, even when the broker delivers the request or the
// reply twice (at-least-once). Replies that name no responder (not sent by
// Switchboard) are told apart by their ID.
func (g *gatherer) deliver(m *Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isFull {
		return
	}
	who := "r:" + m.Responder
	if m.Responder == "" {
		who = "id:" + m.ID
	}
	if _, dup := g.seen[who]; dup {
		return
	}
	if g.seen == nil {
		g.seen = make(map[string]struct{})
	}
	g.seen[who] = struct{}{}
	if re := remoteError(g.topic, m); re != nil {
		g.got.Errors = append(g.got.Errors, re)
	} else {
		g.got.Replies = append(g.got.Replies, m)
	}
	if g.want > 0 && g.got.Count() >= g.want {
		g.isFull = true
		close(g.full)
	}
}

// Gather publishes req to topic and collects the replies of its responders
// (see Respond), at most one per responding group (Message.Responder; a
// reply delivered twice, or a request handled twice by a group, counts
// once): until WantReplies replies have arrived, or the deadline
// (ctx's, or GatherTimeout, whichever is earlier) passes, or ctx is
// cancelled. It always returns what arrived. The error is nil when the
// wanted count arrived, or when no count was wanted and the deadline
// passed; ErrTimeout when a wanted count did not arrive in time;
// ctx.Err() when ctx was cancelled. Zero responders is not an error. The
// Gathered is never nil, even when the request was invalid (ErrInvalid) or
// could not be sent.
func (c *Client) Gather(ctx context.Context, topic string, req *Message, opts ...GatherOption) (*Gathered, error) {
	if err := undelayed(req); err != nil {
		return &Gathered{}, err
	}
	if err := validName("topic", topic); err != nil {
		return &Gathered{}, err
	}
	o := gatherOptions{timeout: c.o.requestTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.want < 0 {
		return &Gathered{}, invalid("WantReplies(%d): the count must not be negative", o.want)
	}
	if o.timeout <= 0 {
		return &Gathered{}, invalid("GatherTimeout(%s): the timeout must be positive", o.timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	g := &gatherer{topic: topic, want: o.want, full: make(chan struct{})}
	corr := newID()
	sctx, span := c.tel.startClient(ctx, "gather", topic)
	if _, err := c.startRequest(sctx, transport.Topic(topic), req, corr, g); err != nil {
		endSpan(span, err)
		return &Gathered{}, err
	}
	var err error
	select {
	case <-g.full:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			if o.want > 0 {
				err = fmt.Errorf("%w: gather on %s", ErrTimeout, topic)
			}
		} else {
			err = ctx.Err()
		}
	case <-c.closing:
		err = ErrClosed
	}
	c.currentReplyInbox().unregister(corr)
	g.mu.Lock()
	g.isFull = true
	out := g.got
	g.mu.Unlock()
	if err != nil && o.want > 0 && out.Count() >= o.want {
		err = nil
	}
	if span != nil {
		span.SetAttributes(attribute.Int("messaging.switchboard.replies", out.Count()))
	}
	endSpan(span, err)
	return &out, err
}
