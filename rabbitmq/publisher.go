package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/internal/wait"
	"github.com/switchboard-go/switchboard/transport"
)

// outMsg is a message ready to publish.
type outMsg struct {
	exchange  string
	key       string
	mandatory bool
	pub       amqp.Publishing
	// dest names the destination in errors.
	dest transport.Address
}

// errLost: the channel closed before the broker confirmed; republish.
type lostError struct{ cause *amqp.Error }

func (e *lostError) Error() string {
	if e.cause != nil {
		return "rabbitmq: channel closed before confirm: " + e.cause.Error()
	}
	return "rabbitmq: channel closed before confirm"
}

var errLost = &lostError{}

// confirmGrace is how long Send still waits for the confirms of messages
// it has published once its context is done.
const confirmGrace = 250 * time.Millisecond

var errNacked = errors.New("rabbitmq: broker nacked the message")

// attempt is one publish of an outMsg on one channel.
type attempt struct {
	m        *outMsg
	done     chan struct{}
	err      error
	ret      *amqp.Return
	win      chan struct{} // the publisher's window, a slot of which it holds
	released atomic.Bool

	// dc is the message's own confirmation, set before sent is closed
	// (nil when the publish failed). resolve takes ack or nack from it,
	// not from the NotifyPublish stream: amqp091-go (v1.10-v1.16) holds
	// a basic.nack that arrives ahead of an earlier message's basic.ack,
	// and a later cumulative basic.ack (multiple=true) that covers it,
	// which RabbitMQ sends, turns it into an ack on that stream; the
	// message would be reported sent and never be in a queue.
	dc   *amqp.DeferredConfirmation
	sent chan struct{}
}

// release gives the attempt's slot of the publish window back, once.
// (A flag, not a sync.Once and a closure: two allocations less per
// message.)
func (a *attempt) release() {
	if a.released.CompareAndSwap(false, true) {
		<-a.win
	}
}

func (a *attempt) finish(err error, ret *amqp.Return) {
	a.err, a.ret = err, ret
	close(a.done)
	a.release()
}

// pubChan is the state of one confirm-mode channel.
type pubChan struct {
	ch *amqp.Channel

	pubMu sync.Mutex // serialises publishes: delivery tags follow publish order

	mu      sync.Mutex
	pending map[uint64]*attempt
	returns []amqp.Return
	dead    bool
	lostCh  chan struct{}

	// Inbox channels only.
	replies  <-chan amqp.Delivery
	wireAddr string
}

// publisher publishes with confirms on a channel it keeps open.
type publisher struct {
	t     *Transport
	name  string
	k     *keeper[*pubChan]
	win   chan struct{}
	extra func(ctx context.Context, p *publisher, pc *pubChan) error
	wg    sync.WaitGroup
}

func newPublisher(t *Transport, name string, extra func(context.Context, *publisher, *pubChan) error) *publisher {
	p := &publisher{t: t, name: name, win: make(chan struct{}, t.opts.PublishWindow), extra: extra}
	p.k = newKeeper(t.m, name, p.setup, func(pc *pubChan, cerr *amqp.Error) { pc.kill(cerr) })
	return p
}

func (p *publisher) setup(ctx context.Context, ch *amqp.Channel) (*pubChan, error) {
	if err := ch.Confirm(false); err != nil {
		return nil, brokerErr("enable publisher confirms", err)
	}
	pc := &pubChan{ch: ch, pending: make(map[uint64]*attempt), lostCh: make(chan struct{})}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, cap(p.win)+16))
	returns := ch.NotifyReturn(make(chan amqp.Return))
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		pc.listen(confirms, returns, closes)
	}()
	if p.extra != nil {
		if err := p.extra(ctx, p, pc); err != nil {
			return nil, err
		}
	}
	return pc, nil
}

// listen resolves attempts from confirms and returns until the channel
// closes. The reader goroutine of amqp091-go hands a basic.return to the
// unbuffered returns chan before it handles the confirm of the same
// message, so the return is always seen first.
func (pc *pubChan) listen(confirms <-chan amqp.Confirmation, returns <-chan amqp.Return, closes <-chan *amqp.Error) {
	var cerr *amqp.Error
	for confirms != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			pc.mu.Lock()
			pc.returns = append(pc.returns, r)
			pc.mu.Unlock()
		case c, ok := <-confirms:
			if !ok {
				confirms = nil
				continue
			}
			pc.resolve(c)
		}
	}
	if closes != nil {
		if e, ok := <-closes; ok {
			cerr = e
		}
	}
	pc.kill(cerr)
}

func (pc *pubChan) resolve(c amqp.Confirmation) {
	pc.mu.Lock()
	a := pc.pending[c.DeliveryTag]
	delete(pc.pending, c.DeliveryTag)
	var ret *amqp.Return
	if a != nil && len(pc.returns) > 0 {
		r := pc.returns[0]
		if r.Exchange == a.m.exchange && r.RoutingKey == a.m.key && r.MessageId == a.m.pub.MessageId {
			ret = &r
			pc.returns = pc.returns[1:]
		}
	}
	pc.mu.Unlock()
	if a == nil {
		return
	}
	// The confirm can arrive before publish has its DeferredConfirmation
	// (it is written to the socket by then, so the wait is short).
	<-a.sent
	ack := c.Ack
	if a.dc != nil {
		select {
		case <-a.dc.Done(): // set by the first basic.ack/nack that covered the tag
			ack = a.dc.Acked()
		default:
		}
	}
	switch {
	case ret != nil:
		a.finish(fmt.Errorf("rabbitmq: %s: unroutable (%d %s): %w", a.m.dest, ret.ReplyCode, ret.ReplyText, transport.ErrNotFound), ret)
	case !ack:
		a.finish(errNacked, nil)
	default:
		a.finish(nil, nil)
	}
}

func (pc *pubChan) isDead() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.dead
}

// kill fails every pending attempt as lost. It is idempotent.
func (pc *pubChan) kill(cerr *amqp.Error) {
	pc.mu.Lock()
	if pc.dead {
		pc.mu.Unlock()
		return
	}
	pc.dead = true
	close(pc.lostCh)
	pend := pc.pending
	pc.pending = nil
	pc.mu.Unlock()
	err := errLost
	if cerr != nil {
		err = &lostError{cause: cerr}
	}
	for _, a := range pend {
		a.finish(err, nil)
	}
}

// publish publishes m on pc and returns the attempt to wait for.
func (p *publisher) publish(ctx context.Context, pc *pubChan, m *outMsg) (*attempt, error) {
	select {
	case p.win <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("rabbitmq: waiting for the publish window: %w: %w", transport.ErrUnavailable, ctx.Err())
	case <-pc.lostCh:
		return nil, errLost
	}
	a := &attempt{m: m, done: make(chan struct{}), sent: make(chan struct{}), win: p.win}
	pc.pubMu.Lock()
	defer pc.pubMu.Unlock()
	pc.mu.Lock()
	if pc.dead {
		pc.mu.Unlock()
		a.release()
		return nil, errLost
	}
	seq := pc.ch.GetNextPublishSeqNo()
	pc.pending[seq] = a
	pc.mu.Unlock()
	dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, m.exchange, m.key, m.mandatory, false, m.pub)
	a.dc = dc
	close(a.sent)
	if err != nil {
		pc.mu.Lock()
		mine := pc.pending[seq] == a
		if mine {
			delete(pc.pending, seq)
		}
		pc.mu.Unlock()
		if !mine {
			return a, nil // already failed as lost
		}
		a.release()
		if errors.Is(err, amqp.ErrClosed) || pc.ch.IsClosed() || isNetErr(err) {
			// The connection is going down (amqp091-go shuts it down after a
			// failed write): nothing pending on this channel will be confirmed.
			go pc.kill(nil)
			return nil, errLost
		}
		return nil, brokerErr("publish to "+m.dest.String(), err)
	}
	return a, nil
}

// sendAll publishes msgs in order, pipelined, and waits for every
// confirm; messages whose channel closed before their confirm are
// republished on the next channel, in order. ensure, when not nil, runs
// before each round (declares the exchange).
func (p *publisher) sendAll(ctx context.Context, msgs []*outMsg, ensure func(context.Context) error) error {
	todo := msgs
	nackRounds, softRounds := 0, 0
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rabbitmq: publish to %s: %w: %w", todo[0].dest, transport.ErrUnavailable, err)
		}
		if ensure != nil {
			if err := ensure(ctx); err != nil {
				return err
			}
		}
		pc, err := p.k.current(ctx)
		if err != nil {
			return err
		}
		if pc.isDead() { // the keeper has not noticed yet
			if !wait.Sleep(ctx, p.t.closed, 10*time.Millisecond) {
				if ctx.Err() == nil {
					return errClosed("send")
				}
				return fmt.Errorf("rabbitmq: reconnecting: %w: %w", transport.ErrUnavailable, ctx.Err())
			}
			continue
		}
		atts := make([]*attempt, 0, len(todo))
		var perr error
		for _, m := range todo {
			a, err := p.publish(ctx, pc, m)
			if err != nil {
				perr = err
				break
			}
			atts = append(atts, a)
		}
		var retry []*outMsg
		var ferr error
		nacked, soft := false, false
		ctxDone := ctx.Done()
		var grace <-chan time.Time
		for i, a := range atts {
			for waiting := true; waiting; {
				select {
				case <-a.done:
					waiting = false
				case <-ctxDone:
					// The messages are in the broker's hands and cannot be
					// withdrawn: collect the confirms already due for a
					// moment rather than report them as failed (the caller
					// would send them again).
					ctxDone = nil
					tm := time.NewTimer(confirmGrace)
					defer tm.Stop()
					grace = tm.C
				case <-grace:
					return fmt.Errorf("rabbitmq: waiting for publisher confirms: %w: %w", transport.ErrUnavailable, ctx.Err())
				case <-p.t.closed:
					return fmt.Errorf("rabbitmq: transport closed while waiting for publisher confirms: %w", transport.ErrClosed)
				}
			}
			var le *lostError
			switch {
			case a.err == nil:
			case errors.As(a.err, &le):
				if le.cause != nil && le.cause.Server && le.cause.Code != amqp.ConnectionForced {
					// The broker closed the channel or connection because of
					// what was published (not a restart): count, to stop
					// republishing a message that keeps doing it.
					soft = true
				}
				if le.cause != nil && le.cause.Code == amqp.NotFound {
					p.t.forgetExchanges()
				}
				retry = append(retry, todo[i])
			case errors.Is(a.err, errNacked):
				nacked = true
				retry = append(retry, todo[i])
			default:
				if ferr == nil {
					ferr = a.err
				}
			}
		}
		if ferr != nil {
			return ferr
		}
		if perr != nil && !errors.Is(perr, errLost) {
			return perr
		}
		if soft {
			softRounds++
			if softRounds > 3 {
				return brokerErr("publish to "+todo[0].dest.String(), retryCause(atts))
			}
		}
		if nacked {
			nackRounds++
			p.recycle(pc)
			if nackRounds > 5 {
				return fmt.Errorf("rabbitmq: publish to %s: broker nacked the message %d times: %w", todo[0].dest, nackRounds, transport.ErrUnavailable)
			}
			if !wait.Sleep(ctx, p.t.closed, wait.Backoff(nackRounds, backoffMin, time.Second)) {
				if ctx.Err() == nil {
					return fmt.Errorf("rabbitmq: transport closed: %w", transport.ErrClosed)
				}
				return fmt.Errorf("rabbitmq: publish to %s: broker nacked: %w: %w", todo[0].dest, transport.ErrUnavailable, ctx.Err())
			}
		}
		todo = append(retry, todo[len(atts):]...)
	}
	return nil
}

// recycle replaces a channel whose publishes the broker nacked: the next
// round publishes on a new channel. A RabbitMQ channel keeps a client
// state per quorum queue it published to, made on the first publish from
// the queue's leader as the queue record then named it; when that node is
// down, RabbitMQ 3.10 (rabbit_fifo_client's first enqueue asks the node
// it picked, and rejects the publish on nodedown without learning the new
// leader) nacks every later publish on that channel to that queue. A new
// channel starts from the queue's current leader. Attempts still pending
// on pc are failed as lost and republished (at-least-once).
func (p *publisher) recycle(pc *pubChan) {
	if pc.isDead() {
		return
	}
	p.t.opts.Logger.Info("rabbitmq: publish nacked, retrying on a new channel", "channel", p.name)
	pc.kill(nil)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = pc.ch.Close() // the keeper opens the next channel
	}()
}

// retryCause returns the channel exception that lost some attempt.
func retryCause(atts []*attempt) error {
	for _, a := range atts {
		var le *lostError
		if errors.As(a.err, &le) && le.cause != nil {
			return le.cause
		}
	}
	return errLost
}

func (p *publisher) stop() {
	p.k.stop()
	p.wg.Wait()
}
