package inmem

import (
	"context"
	"fmt"
	"strconv"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.PushInboxOpener = (*conn)(nil)

// OpenPushInbox implements transport.PushInboxOpener: a Send to the
// inbox's address calls deliver in the sender's goroutine, with the
// broker's own copy of each reply, instead of queueing it for Receive; so
// a reply reaches its requester with no goroutine hand-off in between.
func (c *conn) OpenPushInbox(_ context.Context, deliver func(*transport.Message)) (transport.Inbox, error) {
	if deliver == nil {
		return nil, fmt.Errorf("%w: inmem: OpenPushInbox: nil deliver function", transport.ErrInvalid)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	addr := "inbox-" + strconv.FormatUint(c.b.nextID.Add(1), 10)
	in := &inbox{c: c, addr: addr, closed: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("inmem: %w", transport.ErrClosed)
	}
	c.inboxes[in] = struct{}{}
	// Under c.mu, so that the conn's Close, which closes its inboxes,
	// cannot run between the two registrations.
	c.b.mu.Lock()
	if c.b.pushes == nil {
		c.b.pushes = make(map[string]func(*transport.Message))
	}
	c.b.pushes[addr] = deliver
	c.b.mu.Unlock()
	c.mu.Unlock()
	return in, nil
}
