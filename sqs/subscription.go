package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/switchboard-go/switchboard/internal/wait"
	"github.com/switchboard-go/switchboard/transport"
)

// poller long-polls one queue and re-declares it when it disappears (an
// emulator restart, a deleted queue), so that a subscription resumes by
// itself.
type poller struct {
	t       *Transport
	name    string // for logs
	declare func(ctx context.Context, fresh bool) (string, error)

	mu  sync.Mutex
	url string

	backoff time.Duration
}

func (p *poller) queueURL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.url
}

// receive makes one ReceiveMessage call for up to n messages.
func (p *poller) receive(ctx context.Context, n int) ([]sqstypes.Message, error) {
	out, err := p.t.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(p.queueURL()),
		MaxNumberOfMessages:         int32(n),
		WaitTimeSeconds:             int32(p.t.opts.WaitTime / time.Second),
		VisibilityTimeout:           int32(p.t.opts.VisibilityTimeout / time.Second),
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount},
	})
	if err != nil {
		return nil, wrapErr("ReceiveMessage "+p.name, err)
	}
	p.mu.Lock()
	p.backoff = 0
	p.mu.Unlock()
	return out.Messages, nil
}

// recover handles a failed poll: it waits (exponential backoff up to 2s)
// and, when the queue is gone, declares it again. It returns false when
// stop is closed.
func (p *poller) recover(ctx context.Context, stop <-chan struct{}, err error) bool {
	p.mu.Lock()
	if p.backoff == 0 {
		p.backoff = 100 * time.Millisecond
	} else {
		p.backoff = min(2*p.backoff, 2*time.Second)
	}
	pause := p.backoff
	p.mu.Unlock()
	p.t.log.Warn("sqs: receive failed; retrying", "from", p.name, "in", pause, "err", err)
	if !wait.Sleep(ctx, stop, pause) {
		return false
	}
	if errors.Is(err, transport.ErrNotFound) {
		u, derr := p.declare(ctx, true)
		if derr != nil {
			p.t.log.Warn("sqs: re-declaring failed", "from", p.name, "err", derr)
			return true
		}
		p.t.log.Info("sqs: queue re-declared", "from", p.name)
		p.mu.Lock()
		p.url = u
		p.mu.Unlock()
	}
	return true
}

// toMessage converts a received SQS message. The message's As refers to
// *sm (an element of the ReceiveMessage response), not a copy of it.
func toMessage(sm *sqstypes.Message, log func(msg string, args ...any)) *transport.Message {
	attrs := make(map[string]string, len(sm.MessageAttributes))
	for k, v := range sm.MessageAttributes {
		switch {
		case v.StringValue != nil:
			attrs[k] = *v.StringValue
		case v.BinaryValue != nil:
			attrs[k] = string(v.BinaryValue)
		}
	}
	body := aws.ToString(sm.Body)
	m, err := decode(body, attrs)
	if err != nil {
		// Deliver what arrived rather than loop on a message that cannot
		// be decoded: raw body; the ce- attributes set the envelope and
		// the others are headers, escaped where they could not be
		// published again (R85: sb-headers, sb-body-encoding, ...).
		log("sqs: message attributes not decodable; delivered raw", "id", aws.ToString(sm.MessageId), "err", err)
		m = &transport.Message{Body: []byte(body)}
		transport.DecodeEnvelope(m, attrs, attrPrefix)
	}
	if m.ID == "" {
		m.ID = aws.ToString(sm.MessageId)
	}
	if n, err := strconv.Atoi(sm.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
		m.DeliveryCount = n
	}
	m.AsFunc = func(target any) bool {
		if p, ok := target.(*sqstypes.Message); ok {
			*p = *sm
			return true
		}
		return false
	}
	return m
}

// subscription implements transport.Subscription over one SQS queue.
type subscription struct {
	p         *poller
	receivers int
	tokens    chan struct{} // one per message that may be held: MaxInFlight
	ready     chan struct{}
	stop      chan struct{}
	pollCtx   context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu     sync.Mutex
	closed bool
	buf    []*transport.Message
	held   map[string]time.Time // receipt handle -> visibility deadline

	deletes batcher

	lease *lease // a queue consumer's lease (see lease.go); nil for a group's; guarded by mu

	closeOnce sync.Once
	closeErr  error
}

func newSubscription(t *Transport, name, qurl string, declare func(context.Context, bool) (string, error), maxInFlight, receivers int) *subscription {
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{
		p:         &poller{t: t, name: name, declare: declare, url: qurl},
		receivers: receivers,
		tokens:    make(chan struct{}, maxInFlight),
		ready:     make(chan struct{}, 1),
		stop:      make(chan struct{}),
		pollCtx:   ctx,
		cancel:    cancel,
		held:      make(map[string]time.Time),
	}
	for range maxInFlight {
		s.tokens <- struct{}{}
	}
	s.deletes = batcher{flush: s.deleteBatch, maxFlights: 4}
	return s
}

func (s *subscription) start() {
	for range s.receivers {
		s.wg.Go(s.receiveLoop)
	}
	s.wg.Go(s.extendLoop)
}

func (s *subscription) receiveLoop() {
	for {
		select {
		case <-s.tokens:
		case <-s.stop:
			return
		}
		n := 1
	more:
		for n < maxBatch {
			select {
			case <-s.tokens:
				n++
			default:
				break more
			}
		}
		var msgs []sqstypes.Message
		var err error
		select {
		case <-s.stop:
		default:
			msgs, err = s.p.receive(s.pollCtx, n)
		}
		if len(msgs) > n { // never, but keep the token count right
			msgs = msgs[:n]
		}
		if len(msgs) > 0 {
			s.add(msgs)
		}
		for range n - len(msgs) {
			s.tokens <- struct{}{}
		}
		if err != nil && !s.p.recover(s.pollCtx, s.stop, err) {
			return
		}
		select {
		case <-s.stop:
			return
		default:
		}
	}
}

func (s *subscription) add(msgs []sqstypes.Message) {
	deadline := time.Now().Add(s.p.t.opts.VisibilityTimeout)
	out := make([]*transport.Message, 0, len(msgs))
	for i := range msgs {
		m := toMessage(&msgs[i], s.p.t.log.Warn)
		if msgs[i].ReceiptHandle == nil {
			msgs[i].ReceiptHandle = aws.String("")
		}
		// The receipt handle's pointer, as the response holds it: an
		// AckID that costs no allocation (a string would be boxed).
		m.AckID = msgs[i].ReceiptHandle
		out = append(out, m)
	}
	s.mu.Lock()
	for _, m := range out {
		s.held[*m.AckID.(*string)] = deadline
	}
	s.buf = append(s.buf, out...)
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// extendLoop extends the visibility of held messages before it runs out.
func (s *subscription) extendLoop() {
	vis := s.p.t.opts.VisibilityTimeout
	tick := time.NewTicker(max(vis/4, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		var due []string
		s.mu.Lock()
		for rh, d := range s.held {
			if d.Sub(now) < vis/2 {
				due = append(due, rh)
			}
		}
		s.mu.Unlock()
		if len(due) == 0 {
			continue
		}
		failed := s.changeVisibility(s.pollCtx, due, vis)
		deadline := now.Add(vis)
		s.mu.Lock()
		for _, rh := range due {
			if _, ok := s.held[rh]; ok && failed[rh] == nil {
				s.held[rh] = deadline
			}
		}
		s.mu.Unlock()
		for rh, err := range failed {
			s.p.t.log.Warn("sqs: extending visibility failed", "from", s.p.name, "receipt", shorten(rh), "err", err)
		}
	}
}

func shorten(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

// changeVisibility sets the visibility of receipts, 10 per call, and
// returns the errors per receipt.
func (s *subscription) changeVisibility(ctx context.Context, receipts []string, vis time.Duration) map[string]error {
	failed := map[string]error{}
	qurl := s.p.queueURL()
	for start := 0; start < len(receipts); start += maxBatch {
		part := receipts[start:min(start+maxBatch, len(receipts))]
		entries := make([]sqstypes.ChangeMessageVisibilityBatchRequestEntry, len(part))
		for i, rh := range part {
			entries[i] = sqstypes.ChangeMessageVisibilityBatchRequestEntry{
				Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(rh), VisibilityTimeout: int32(vis / time.Second),
			}
		}
		out, err := s.p.t.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(qurl), Entries: entries})
		if err != nil {
			err = wrapErr("ChangeMessageVisibilityBatch "+s.p.name, err)
			for _, rh := range part {
				failed[rh] = err
			}
			continue
		}
		for _, f := range out.Failed {
			i, _ := strconv.Atoi(aws.ToString(f.Id))
			if i >= 0 && i < len(part) {
				failed[part[i]] = batchErr("ChangeMessageVisibilityBatch", []string{aws.ToString(f.Code)}, []string{aws.ToString(f.Message)})
			}
		}
	}
	return failed
}

// Receive implements transport.Subscription.
func (s *subscription) Receive(ctx context.Context, max int) ([]*transport.Message, error) {
	if max < 1 {
		max = 1
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, fmt.Errorf("sqs: subscription %s: %w", s.p.name, transport.ErrClosed)
		}
		if len(s.buf) > 0 {
			n := min(max, len(s.buf))
			out := make([]*transport.Message, n)
			copy(out, s.buf)
			clear(s.buf[:n])
			s.buf = s.buf[n:]
			more := len(s.buf) > 0
			s.mu.Unlock()
			if more {
				select {
				case s.ready <- struct{}{}:
				default:
				}
			}
			return out, nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stop:
		case <-s.ready:
		}
	}
}

// take removes receipts from the held set and returns their tokens.
func (s *subscription) take(ids []any) ([]string, error) {
	receipts := make([]string, 0, len(ids))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("sqs: subscription %s: %w", s.p.name, transport.ErrClosed)
	}
	for _, id := range ids {
		var rh string
		switch v := id.(type) {
		case *string: // as Receive sets it
			if v != nil {
				rh = *v
			}
		case string:
			rh = v
		}
		if rh == "" {
			return nil, fmt.Errorf("sqs: subscription %s: %w: AckID %T is not from this adapter", s.p.name, transport.ErrInvalid, id)
		}
		receipts = append(receipts, rh)
	}
	for _, rh := range receipts {
		if _, ok := s.held[rh]; ok {
			delete(s.held, rh)
			s.tokens <- struct{}{}
		}
	}
	return receipts, nil
}

// Ack implements transport.Subscription: DeleteMessageBatch, 10 per call;
// concurrent Acks share calls (see batcher).
func (s *subscription) Ack(ctx context.Context, ids []any) error {
	receipts, err := s.take(ids)
	if err != nil || len(receipts) == 0 {
		return err
	}
	return s.deletes.do(ctx, receipts)
}

// deleteBatch deletes up to 10 receipts in one call.
func (s *subscription) deleteBatch(ctx context.Context, part []string) map[string]error {
	entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(part))
	for i, rh := range part {
		entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(rh)}
	}
	out, err := s.p.t.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(s.p.queueURL()), Entries: entries})
	if err != nil {
		err = wrapErr("DeleteMessageBatch "+s.p.name, err)
		failed := make(map[string]error, len(part))
		for _, rh := range part {
			failed[rh] = err
		}
		return failed
	}
	var failed map[string]error
	for _, f := range out.Failed {
		c := aws.ToString(f.Code)
		if c == "ReceiptHandleIsInvalid" {
			// A delivery from before a restart: the broker redelivers it.
			s.p.t.log.Info("sqs: ack of a stale delivery ignored", "from", s.p.name)
			continue
		}
		i, _ := strconv.Atoi(aws.ToString(f.Id))
		if i >= 0 && i < len(part) {
			if failed == nil {
				failed = map[string]error{}
			}
			failed[part[i]] = batchErr("DeleteMessageBatch "+s.p.name, []string{c}, []string{aws.ToString(f.Message)})
		}
	}
	return failed
}

// Nack implements transport.Subscription: visibility 0, 10 per call.
func (s *subscription) Nack(ctx context.Context, ids []any) error {
	receipts, err := s.take(ids)
	if err != nil || len(receipts) == 0 {
		return err
	}
	return firstErr(s.changeVisibility(ctx, receipts, 0))
}

func firstErr(m map[string]error) error {
	for _, err := range m {
		return err
	}
	return nil
}

// Close implements transport.Subscription. It waits for the polls under
// way (at most WaitTime) so that no message is received by a poll nobody
// reads, then releases every held message (visibility 0).
func (s *subscription) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		l := s.lease
		s.mu.Unlock()
		close(s.stop)
		if l != nil {
			l.release() // no longer counted
		}
		grace := time.AfterFunc(s.p.t.opts.WaitTime+5*time.Second, s.cancel)
		s.wg.Wait()
		grace.Stop()
		s.cancel()
		s.deletes.wait()
		s.mu.Lock()
		receipts := make([]string, 0, len(s.held))
		for rh := range s.held {
			receipts = append(receipts, rh)
		}
		clear(s.held)
		s.buf = nil
		s.mu.Unlock()
		if len(receipts) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s.closeErr = firstErr(s.changeVisibility(ctx, receipts, 0))
			cancel()
		}
		s.p.t.forget(s, nil)
	})
	return s.closeErr
}

// inbox implements transport.Inbox over a queue of its own. Replies are
// deleted as soon as they are received.
type inbox struct {
	p     *poller
	qname string
	ready chan struct{}
	stop  chan struct{}
	ctx   context.Context
	stopc context.CancelFunc
	wg    sync.WaitGroup

	mu     sync.Mutex
	closed bool
	buf    []*transport.Message

	closeOnce sync.Once
	closeErr  error
}

func newInbox(t *Transport, qname, qurl string, declare func(context.Context, bool) (string, error)) *inbox {
	ctx, cancel := context.WithCancel(context.Background())
	return &inbox{
		p:     &poller{t: t, name: "inbox " + qname, declare: declare, url: qurl},
		qname: qname,
		ready: make(chan struct{}, 1),
		stop:  make(chan struct{}),
		ctx:   ctx,
		stopc: cancel,
	}
}

func (ib *inbox) start() { ib.wg.Go(ib.loop) }

func (ib *inbox) loop() {
	for {
		select {
		case <-ib.stop:
			return
		default:
		}
		msgs, err := ib.p.receive(ib.ctx, maxBatch)
		if err != nil {
			if !ib.p.recover(ib.ctx, ib.stop, err) {
				return
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		entries := make([]sqstypes.DeleteMessageBatchRequestEntry, len(msgs))
		out := make([]*transport.Message, len(msgs))
		for i := range msgs {
			entries[i] = sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: msgs[i].ReceiptHandle}
			out[i] = toMessage(&msgs[i], ib.p.t.log.Warn)
		}
		if _, err := ib.p.t.sqs.DeleteMessageBatch(ib.ctx, &sqs.DeleteMessageBatchInput{
			QueueUrl: aws.String(ib.p.queueURL()), Entries: entries,
		}); err != nil {
			ib.p.t.log.Warn("sqs: deleting received replies failed", "inbox", ib.qname, "err", err)
		}
		ib.mu.Lock()
		ib.buf = append(ib.buf, out...)
		ib.mu.Unlock()
		select {
		case ib.ready <- struct{}{}:
		default:
		}
	}
}

// Address implements transport.Inbox: the inbox queue's URL.
func (ib *inbox) Address() string { return ib.p.queueURL() }

// Receive implements transport.Inbox.
func (ib *inbox) Receive(ctx context.Context) ([]*transport.Message, error) {
	for {
		ib.mu.Lock()
		if ib.closed {
			ib.mu.Unlock()
			return nil, fmt.Errorf("sqs: %s: %w", ib.p.name, transport.ErrClosed)
		}
		if len(ib.buf) > 0 {
			out := ib.buf
			ib.buf = nil
			ib.mu.Unlock()
			return out, nil
		}
		ib.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ib.stop:
		case <-ib.ready:
		}
	}
}

// Close implements transport.Inbox: it stops polling and deletes the queue.
func (ib *inbox) Close() error {
	ib.closeOnce.Do(func() {
		ib.mu.Lock()
		ib.closed = true
		ib.buf = nil
		ib.mu.Unlock()
		close(ib.stop)
		grace := time.AfterFunc(ib.p.t.opts.WaitTime+5*time.Second, ib.stopc)
		ib.wg.Wait()
		grace.Stop()
		ib.stopc()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := ib.p.t.sqs.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(ib.p.queueURL())}); err != nil && !isNotFound(err) {
			ib.closeErr = wrapErr("DeleteQueue "+ib.qname, err)
		}
		ib.p.t.forget(nil, ib)
		ib.p.t.dropQueue(ib.qname)
	})
	return ib.closeErr
}
