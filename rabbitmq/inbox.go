package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/transport"
)

// inbox is a reply inbox over direct reply-to: a no-ack consumer of
// amq.rabbitmq.reply-to on a channel of its own, which is also the
// channel its client's requests are published on.
type inbox struct {
	t    *Transport
	pub  *publisher
	addr string

	closed    chan struct{}
	closeOnce sync.Once
}

// OpenInbox implements transport.Transport.
func (t *Transport) OpenInbox(ctx context.Context) (transport.Inbox, error) {
	if t.isClosed() {
		return nil, errClosed("open inbox")
	}
	ib := &inbox{t: t, closed: make(chan struct{})}
	ib.pub = newPublisher(t, "inbox", ib.setup)
	if err := ib.pub.k.start(ctx); err != nil {
		ib.pub.stop()
		return nil, err
	}
	t.mu.Lock()
	if t.isClosed() {
		t.mu.Unlock()
		ib.pub.stop()
		return nil, errClosed("open inbox")
	}
	t.inboxes[ib] = struct{}{}
	t.mu.Unlock()
	return ib, nil
}

// setup starts the reply consumer on a new channel and learns the
// channel's reply address: a mandatory probe that no queue can route,
// published with reply-to amq.rabbitmq.reply-to, comes back in a
// basic.return carrying the address the broker rewrote it to.
func (ib *inbox) setup(ctx context.Context, p *publisher, pc *pubChan) error {
	d, err := pc.ch.Consume(DirectReplyTo, "", true, false, false, false, nil)
	if err != nil {
		return brokerErr("consume "+DirectReplyTo, err)
	}
	pc.replies = d
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := "sb-inbox-probe-" + hex.EncodeToString(b[:])
	probe := &outMsg{key: id, mandatory: true, dest: transport.Reply(DirectReplyTo),
		pub: amqp.Publishing{ReplyTo: DirectReplyTo, MessageId: id, DeliveryMode: amqp.Transient}}
	a, err := p.publish(ctx, pc, probe)
	if err != nil {
		return fmt.Errorf("rabbitmq: inbox address probe: %w", err)
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: inbox address probe: %w: %w", transport.ErrUnavailable, ctx.Err())
	}
	if a.ret == nil || a.ret.ReplyTo == "" || a.ret.ReplyTo == DirectReplyTo {
		return fmt.Errorf("rabbitmq: inbox address probe was not returned with a reply address (%v): %w", a.err, transport.ErrUnavailable)
	}
	pc.wireAddr = a.ret.ReplyTo
	ib.t.mu.Lock()
	if ib.addr == "" {
		ib.addr = pc.wireAddr
	}
	if !ib.isClosed() {
		ib.t.aliases[pc.wireAddr] = ib
	}
	ib.t.mu.Unlock()
	return nil
}

// inboxFor returns the open inbox of this transport that addr names.
func (t *Transport) inboxFor(addr string) *inbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.aliases[addr]
}

// replyKey maps a reply address to the routing key to publish to: an
// address of one of this transport's inboxes maps to the inbox's current
// address (it changes when the inbox's channel is reopened).
func (t *Transport) replyKey(addr string) string {
	if ib := t.inboxFor(addr); ib != nil {
		if pc, ok := ib.pub.k.peek(); ok && pc.wireAddr != "" {
			return pc.wireAddr
		}
	}
	return addr
}

func (ib *inbox) isClosed() bool {
	select {
	case <-ib.closed:
		return true
	default:
		return false
	}
}

// Address implements transport.Inbox. It stays the same for the inbox's
// life; after a reconnect, this transport maps it to the new address.
func (ib *inbox) Address() string { return ib.addr }

// Receive implements transport.Inbox.
func (ib *inbox) Receive(ctx context.Context) ([]*transport.Message, error) {
	for {
		if ib.isClosed() {
			return nil, errClosed("inbox receive")
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pc, err := ib.pub.k.current(ctx)
		if err != nil {
			if ib.isClosed() {
				return nil, errClosed("inbox receive")
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		select {
		case d, ok := <-pc.replies:
			if !ok {
				// The channel closed, or the broker cancelled the reply
				// consumer while the channel stayed open: close it, so
				// that its keeper opens a new one with a new consumer
				// (this inbox's address maps to the new one).
				if !ib.isClosed() && !pc.ch.IsClosed() {
					ib.t.opts.Logger.Warn("rabbitmq: the broker cancelled the reply consumer; consuming again")
					_ = pc.ch.Close()
				}
				select {
				case <-pc.lostCh:
				case <-ctx.Done():
				case <-ib.closed:
				}
				continue
			}
			out := []*transport.Message{decode(&d, false)}
		drain:
			for len(out) < 256 {
				select {
				case d, ok := <-pc.replies:
					if !ok {
						break drain
					}
					out = append(out, decode(&d, false))
				default:
					break drain
				}
			}
			return out, nil
		case <-pc.lostCh:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ib.closed:
			return nil, errClosed("inbox receive")
		}
	}
}

// Close implements transport.Inbox: the consumer and its address go away
// with the channel.
func (ib *inbox) Close() error {
	ib.closeOnce.Do(func() {
		close(ib.closed)
		ib.pub.stop()
		ib.t.mu.Lock()
		for a, x := range ib.t.aliases {
			if x == ib {
				delete(ib.t.aliases, a)
			}
		}
		delete(ib.t.inboxes, ib)
		ib.t.mu.Unlock()
	})
	return nil
}
