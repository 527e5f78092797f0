package sqs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/switchboard-go/switchboard/transport"
)

// SQS does not report a queue's consumers, so a queue's consumer
// advertises itself with a lease: a tag on the queue (TagQueue) named
// leaseTagPrefix + a random ID, whose value is the lease's expiry in Unix
// milliseconds. The consumer renews it every ConsumerLease/3 while it
// runs and removes it (UntagQueue) when it closes; the lease of a process
// that died expires after ConsumerLease. Transport.Consumers counts the
// unexpired leases (ListQueueTags). Every lease also writes the tag
// leaseMarker, which stays when the consumers are gone: a queue without it
// is read only by consumers that hold no lease (not written with
// Switchboard), so its consumers cannot be counted.
const (
	leaseTagPrefix = "sb-consumer-"
	leaseMarker    = "sb-leases"
)

// maxQueueTags is SQS's limit of tags per queue.
const maxQueueTags = 50

// defaultConsumerLease is Options.ConsumerLease's default.
const defaultConsumerLease = 30 * time.Second

// lease is one queue consumer's advertisement.
type lease struct {
	t    *Transport
	p    *poller
	key  string
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// newLease returns the lease of a consumer of p's queue, not yet taken.
func newLease(t *Transport, p *poller) *lease {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return &lease{t: t, p: p, key: leaseTagPrefix + hex.EncodeToString(rnd[:]), stop: make(chan struct{})}
}

// take writes the lease, removing the expired leases of consumers that
// died first (a queue holds at most 50 tags), and starts renewing it. A
// queue already holding 50 tags is not an error: it has live consumers.
func (l *lease) take(ctx context.Context) error {
	qurl := l.p.queueURL()
	tags, err := l.t.listTags(ctx, qurl, l.p.name)
	if err != nil {
		return err
	}
	now := time.Now()
	var expired []string
	for k, v := range tags {
		if ms, ok := leaseExpiry(k, v); ok && ms <= now.UnixMilli() {
			expired = append(expired, k)
		}
	}
	if len(expired) > 0 {
		if _, err := l.t.sqs.UntagQueue(ctx, &sqs.UntagQueueInput{QueueUrl: aws.String(qurl), TagKeys: expired}); err != nil {
			return wrapErr("UntagQueue "+l.p.name, err)
		}
	}
	if len(tags)-len(expired) < maxQueueTags-1 { // the marker may be missing
		if err := l.renew(ctx); err != nil {
			return err
		}
	}
	l.wg.Go(l.renewLoop)
	return nil
}

// renew writes the lease with a new expiry.
func (l *lease) renew(ctx context.Context) error {
	exp := time.Now().Add(l.t.opts.ConsumerLease).UnixMilli()
	_, err := l.t.sqs.TagQueue(ctx, &sqs.TagQueueInput{
		QueueUrl: aws.String(l.p.queueURL()),
		Tags:     map[string]string{l.key: strconv.FormatInt(exp, 10), leaseMarker: "1"},
	})
	return wrapErr("TagQueue "+l.p.name, err)
}

func (l *lease) renewLoop() {
	tk := time.NewTicker(l.t.opts.ConsumerLease / 3)
	defer tk.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tk.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.t.opts.ConsumerLease/3)
		if err := l.renew(ctx); err != nil {
			l.t.log.Warn("sqs: renewing the consumer lease failed; retrying", "queue", l.p.name, "error", err)
		}
		cancel()
	}
}

// release stops renewing and removes the lease, so that the consumer no
// longer counts.
func (l *lease) release() {
	l.once.Do(func() {
		close(l.stop)
		l.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := l.t.sqs.UntagQueue(ctx, &sqs.UntagQueueInput{QueueUrl: aws.String(l.p.queueURL()), TagKeys: []string{l.key}}); err != nil {
			l.t.log.Debug("sqs: removing the consumer lease failed; it expires by itself", "queue", l.p.name, "error", err)
		}
	})
}

// leaseExpiry parses a lease tag.
func leaseExpiry(key, value string) (int64, bool) {
	if !strings.HasPrefix(key, leaseTagPrefix) {
		return 0, false
	}
	ms, err := strconv.ParseInt(value, 10, 64)
	return ms, err == nil
}

func (t *Transport) listTags(ctx context.Context, qurl, what string) (map[string]string, error) {
	out, err := t.sqs.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(qurl)})
	if err != nil {
		return nil, wrapErr("ListQueueTags "+what, err)
	}
	return out.Tags, nil
}

// liveLeases counts the unexpired consumer leases of a queue; known is
// false when the queue has no lease marker (its consumers, if any, hold no
// lease).
func (t *Transport) liveLeases(ctx context.Context, qname, qurl string) (n int, known bool, err error) {
	tags, err := t.listTags(ctx, qurl, qname)
	if err != nil {
		return 0, false, err
	}
	now := time.Now().UnixMilli()
	for k, v := range tags {
		if ms, ok := leaseExpiry(k, v); ok && ms > now {
			n++
		}
	}
	_, known = tags[leaseMarker]
	return n, known || n > 0, nil
}

var _ transport.ConsumerCounter = (*Transport)(nil)

// Consumers implements transport.ConsumerCounter with the queue's
// consumer leases (ListQueueTags): a consumer counts from the moment its
// Subscribe returns until its Close, or, when its process died, until its
// lease expires (Options.ConsumerLease, default 30s; the expiry is the
// consumer's clock, compared with this process's). It fails with an error
// matching ErrNotFound when the queue does not exist, and with one
// matching errors.ErrUnsupported when no consumer ever took a lease on it
// (the tag "sb-leases" is missing: its consumers, if any, were not
// written with Switchboard and cannot be counted).
func (t *Transport) Consumers(ctx context.Context, queue string) (int, error) {
	if err := t.checkOpen(); err != nil {
		return 0, err
	}
	qname := QueueName(queue, t.opts.FIFO)
	qurl, err := t.queueURL(ctx, qname, false)
	if err != nil {
		return 0, err
	}
	n, known, err := t.liveLeases(ctx, qname, qurl)
	if errors.Is(err, transport.ErrNotFound) {
		t.dropQueue(qname)
	}
	if err == nil && !known {
		err = fmt.Errorf("sqs: consumers of %s: no consumer holds a lease on it: %w", qname, errors.ErrUnsupported)
	}
	return n, err
}
