package sqs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/switchboard-go/switchboard/transport"
)

func init() {
	transport.Register("sqs", openURL)
}

// Options configures a Transport made by New. The zero value is usable.
type Options struct {
	// FIFO selects FIFO topics and queues (names end in ".fifo"): messages
	// with the same key, and the messages of one Send, reach a group in
	// order (MessageGroupId = key), and one key is in flight to one member
	// of a group at a time. Capabilities.OrderedByKey reports it. The
	// sqs:// URL defaults to FIFO (fifo=true); with New, set it: standard
	// mode (false) relaxes per-key order across members.
	FIFO bool
	// VisibilityTimeout is how long a received message stays invisible to
	// other consumers; the adapter extends it while the message is held.
	// Default 10s; at least 1s. It is also how long a message stays
	// invisible when its receive response or its ack is lost (a cut
	// connection), so shorter means faster redelivery after faults, and
	// longer tolerates longer stalls of this process without duplicates.
	VisibilityTimeout time.Duration
	// WaitTime is the long-poll duration of one ReceiveMessage call
	// (0-20s, default 2s). Closing a subscription waits for its polls to
	// return (so that no message is received by a poll nobody reads), so
	// it bounds the time Close takes.
	WaitTime time.Duration
	// Receivers is the number of concurrent long polls per subscription.
	// Zero: one for standard queues (so that one consumer sees the
	// queue's order), ceil(MaxInFlight/10) up to 10 for FIFO queues (the
	// service keeps per-group order across polls).
	Receivers int
	// InboxPrefix starts the names of reply inbox queues. Default "sb-inbox".
	InboxPrefix string
	// ConsumerLease is how long a queue consumer's lease lasts (3s to
	// 1h, default 30s). SQS does not report consumers, so each consumer
	// of a queue (a service's request queue, a recipient's queue) tags
	// the queue with a lease (TagQueue), renewed every ConsumerLease/3
	// and removed on Close; Consumers counts the unexpired ones
	// (ListQueueTags). A consumer whose process died counts until its
	// lease expires, so a request to a service whose responders all
	// crashed fails with messaging.ErrNoResponders after at most
	// ConsumerLease (before that, it waits for its deadline). Consumers
	// need sqs:TagQueue and sqs:UntagQueue, requesters
	// sqs:ListQueueTags.
	ConsumerLease time.Duration
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
	// DialContext, when set, opens the HTTP connections to the service
	// (proxies, fault injection in tests). It is used only when the
	// aws.Config given to New has no HTTPClient.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

const (
	defaultVisibility = 10 * time.Second
	defaultWait       = 2 * time.Second
)

// Transport is the SQS/SNS implementation of transport.Transport. Make one
// with New or with transport.Open("sqs://...").
type Transport struct {
	sqs  *sqs.Client
	sns  *sns.Client
	opts Options
	log  *slog.Logger
	// closeIdle releases the idle HTTP connections of a client this
	// package made (nil otherwise).
	closeIdle func()

	mu       sync.Mutex
	closed   bool
	topics   map[string]string // Switchboard topic name -> ARN
	queues   map[string]string // SQS queue name -> URL
	subs     map[*subscription]struct{}
	inboxes  map[*inbox]struct{}
	closeErr error
}

var _ transport.Transport = (*Transport)(nil)

// New returns a Transport using cfg (for example from
// config.LoadDefaultConfig). cfg.BaseEndpoint selects an emulator or
// LocalStack. When cfg.HTTPClient is nil, the Transport makes its own and
// closes its idle connections on Close.
func New(cfg aws.Config, opts Options) (*Transport, error) {
	if opts.VisibilityTimeout == 0 {
		opts.VisibilityTimeout = defaultVisibility
	}
	if opts.VisibilityTimeout < time.Second || opts.VisibilityTimeout > 12*time.Hour {
		return nil, fmt.Errorf("sqs: %w: VisibilityTimeout %v: accepted 1s to 12h", transport.ErrInvalid, opts.VisibilityTimeout)
	}
	if opts.WaitTime == 0 {
		opts.WaitTime = defaultWait
	}
	if opts.WaitTime < 0 || opts.WaitTime > 20*time.Second {
		return nil, fmt.Errorf("sqs: %w: WaitTime %v: accepted 0 to 20s", transport.ErrInvalid, opts.WaitTime)
	}
	if opts.Receivers < 0 || opts.Receivers > 100 {
		return nil, fmt.Errorf("sqs: %w: Receivers %d: accepted 0 to 100", transport.ErrInvalid, opts.Receivers)
	}
	if opts.InboxPrefix == "" {
		opts.InboxPrefix = "sb-inbox"
	}
	if opts.ConsumerLease == 0 {
		opts.ConsumerLease = defaultConsumerLease
	}
	if opts.ConsumerLease < 3*time.Second || opts.ConsumerLease > time.Hour {
		return nil, fmt.Errorf("sqs: %w: ConsumerLease %v: accepted 3s to 1h", transport.ErrInvalid, opts.ConsumerLease)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Region == "" {
		return nil, fmt.Errorf("sqs: %w: no AWS region: set region= in the URL, AWS_REGION, or a profile's region", transport.ErrInvalid)
	}
	t := &Transport{
		opts:    opts,
		log:     opts.Logger,
		topics:  make(map[string]string),
		queues:  make(map[string]string),
		subs:    make(map[*subscription]struct{}),
		inboxes: make(map[*inbox]struct{}),
	}
	if cfg.HTTPClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 64
		// Below servers' keep-alive timeouts (fauxqs/fastify: 72s), so
		// that a request is rarely sent on a connection the server is
		// closing.
		tr.IdleConnTimeout = 30 * time.Second
		if opts.DialContext != nil {
			tr.DialContext = opts.DialContext
		}
		cfg.HTTPClient = &http.Client{Transport: tr}
		t.closeIdle = tr.CloseIdleConnections
	}
	t.sqs = sqs.NewFromConfig(cfg)
	t.sns = sns.NewFromConfig(cfg)
	return t, nil
}

// URL parameters accepted by the "sqs" scheme.
const acceptedParams = "region, endpoint, profile, fifo, visibility, wait, receivers, inbox_prefix"

// openURL opens "sqs://[host:port]?region=...&endpoint=...". See the
// package documentation for the parameters.
func openURL(ctx context.Context, u *url.URL) (transport.Transport, error) {
	opts := Options{FIFO: true} // the default keeps every promise; fifo=false opts out
	var region, endpoint, profile string
	q, err := transport.Query(u)
	if err != nil {
		return nil, fmt.Errorf("sqs: %w: %v", transport.ErrInvalid, err)
	}
	for k, vs := range q {
		v := ""
		if len(vs) > 0 {
			v = vs[len(vs)-1]
		}
		var err error
		switch k {
		case "region":
			region = v
			if !validRegion(v) {
				err = errors.New("want an AWS region name such as us-east-1 (lower-case letters, digits and '-')")
			}
		case "endpoint":
			endpoint = v
			if pu, perr := url.Parse(v); perr != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				err = errors.New("want an http:// or https:// URL")
			} else {
				err = transport.CheckPort(pu.Host)
			}
		case "profile":
			profile = v
		case "fifo":
			opts.FIFO, err = transport.ParseBool(v)
		case "visibility":
			opts.VisibilityTimeout, err = parseDuration(v)
		case "wait":
			opts.WaitTime, err = parseDuration(v)
			if err == nil && opts.WaitTime == 0 {
				opts.WaitTime = time.Nanosecond // explicit 0: short polling (rounded down to 0s)
			}
		case "receivers":
			opts.Receivers, err = strconv.Atoi(v)
		case "inbox_prefix":
			opts.InboxPrefix = v
		default:
			return nil, fmt.Errorf("sqs: %w: unknown URL parameter %q; accepted: %s", transport.ErrInvalid, k, acceptedParams)
		}
		if err != nil {
			return nil, fmt.Errorf("sqs: %w: URL parameter %s=%q: %v", transport.ErrInvalid, k, v, err)
		}
	}
	if u.User != nil {
		return nil, fmt.Errorf("sqs: %w: credentials in the URL are not accepted; they come from the default AWS chain (environment, shared config, IAM role)", transport.ErrInvalid)
	}
	if u.Host != "" {
		if endpoint != "" {
			return nil, fmt.Errorf("sqs: %w: give the endpoint either as the URL's host or as endpoint=, not both", transport.ErrInvalid)
		}
		if err := transport.CheckPort(u.Host); err != nil {
			return nil, fmt.Errorf("sqs: %w: endpoint: %v", transport.ErrInvalid, err)
		}
		endpoint = "http://" + u.Host
	}
	var lo []func(*awsconfig.LoadOptions) error
	if region != "" {
		lo = append(lo, awsconfig.WithRegion(region))
	}
	if profile != "" {
		lo = append(lo, awsconfig.WithSharedConfigProfile(profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("sqs: loading the AWS configuration: %w", err)
	}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	return New(cfg, opts)
}

func parseDuration(v string) (time.Duration, error) {
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

// Capabilities implements transport.Transport.
func (t *Transport) Capabilities() transport.Capabilities {
	return transport.Capabilities{
		Name:           "sqs",
		MaxMessageSize: maxMessageSize,
		OrderedByKey:   t.opts.FIFO,
		DeliveryCount:  true,
	}
}

// As implements transport.Transport: **sqs.Client and **sns.Client.
func (t *Transport) As(target any) bool {
	switch p := target.(type) {
	case **sqs.Client:
		*p = t.sqs
	case **sns.Client:
		*p = t.sns
	default:
		return false
	}
	return true
}

func (t *Transport) checkOpen() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("sqs: transport: %w", transport.ErrClosed)
	}
	return nil
}

// Close implements transport.Transport.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return t.closeErr
	}
	t.closed = true
	subs := make([]*subscription, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	ibs := make([]*inbox, 0, len(t.inboxes))
	for ib := range t.inboxes {
		ibs = append(ibs, ib)
	}
	t.mu.Unlock()

	var wg sync.WaitGroup
	errs := make([]error, len(subs)+len(ibs))
	for i, s := range subs {
		wg.Go(func() { errs[i] = s.Close() })
	}
	for i, ib := range ibs {
		wg.Go(func() { errs[len(subs)+i] = ib.Close() })
	}
	wg.Wait()
	if t.closeIdle != nil {
		t.closeIdle()
	}
	err := errors.Join(errs...)
	t.mu.Lock()
	t.closeErr = err
	t.mu.Unlock()
	return err
}

func (t *Transport) forget(s *subscription, ib *inbox) {
	t.mu.Lock()
	delete(t.subs, s)
	delete(t.inboxes, ib)
	t.mu.Unlock()
}

// ---- names and declarations ----

// topicARN returns the ARN of topic name, creating the topic (CreateTopic
// is idempotent) unless it is cached.
func (t *Transport) topicARN(ctx context.Context, name string, fresh bool) (string, error) {
	t.mu.Lock()
	arn, ok := t.topics[name]
	t.mu.Unlock()
	if ok && !fresh {
		return arn, nil
	}
	in := &sns.CreateTopicInput{Name: aws.String(TopicName(name, t.opts.FIFO))}
	if t.opts.FIFO {
		in.Attributes = map[string]string{"FifoTopic": "true"}
	}
	out, err := t.sns.CreateTopic(ctx, in)
	if err != nil {
		return "", wrapErr("CreateTopic "+*in.Name, err)
	}
	arn = aws.ToString(out.TopicArn)
	t.mu.Lock()
	t.topics[name] = arn
	t.mu.Unlock()
	return arn, nil
}

// createQueue creates (idempotently) the SQS queue qname and returns its URL.
func (t *Transport) createQueue(ctx context.Context, qname string, attrs map[string]string) (string, error) {
	if strings.HasSuffix(qname, fifoSuffix) {
		a := map[string]string{"FifoQueue": "true"}
		for k, v := range attrs {
			a[k] = v
		}
		attrs = a
	}
	out, err := t.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(qname), Attributes: attrs})
	if err != nil {
		return "", wrapErr("CreateQueue "+qname, err)
	}
	u := aws.ToString(out.QueueUrl)
	t.mu.Lock()
	t.queues[qname] = u
	t.mu.Unlock()
	return u, nil
}

// queueURL returns the URL of an existing queue: ErrNotFound if missing.
func (t *Transport) queueURL(ctx context.Context, qname string, fresh bool) (string, error) {
	t.mu.Lock()
	u, ok := t.queues[qname]
	t.mu.Unlock()
	if ok && !fresh {
		return u, nil
	}
	out, err := t.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(qname)})
	if err != nil {
		return "", wrapErr("GetQueueUrl "+qname, err)
	}
	u = aws.ToString(out.QueueUrl)
	t.mu.Lock()
	t.queues[qname] = u
	t.mu.Unlock()
	return u, nil
}

func (t *Transport) dropQueue(qname string) {
	t.mu.Lock()
	delete(t.queues, qname)
	t.mu.Unlock()
}

// Declare implements transport.Transport.
func (t *Transport) Declare(ctx context.Context, a transport.Address) error {
	if err := t.checkOpen(); err != nil {
		return err
	}
	if a.Kind != transport.KindQueue || a.Name == "" {
		return fmt.Errorf("sqs: Declare %s: %w: only a named queue can be declared", a, transport.ErrInvalid)
	}
	_, err := t.createQueue(ctx, QueueName(a.Name, t.opts.FIFO), nil)
	return err
}

// declareGroup creates topic, the group's queue, the queue policy that
// lets the topic send to it, and the raw-delivery subscription. Every
// step is idempotent.
func (t *Transport) declareGroup(ctx context.Context, topic, group string, fresh bool) (string, error) {
	arn, err := t.topicARN(ctx, topic, fresh)
	if err != nil {
		return "", err
	}
	qname := GroupQueueName(topic, group, t.opts.FIFO)
	qurl, err := t.createQueue(ctx, qname, nil)
	if err != nil {
		return "", err
	}
	qa, err := t.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(qurl),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", wrapErr("GetQueueAttributes "+qname, err)
	}
	qarn := qa.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"switchboard-topic","Effect":"Allow",`+
		`"Principal":{"Service":"sns.amazonaws.com"},"Action":"sqs:SendMessage","Resource":%q,`+
		`"Condition":{"ArnEquals":{"aws:SourceArn":%q}}}]}`, qarn, arn)
	if _, err := t.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
		QueueUrl:   aws.String(qurl),
		Attributes: map[string]string{string(sqstypes.QueueAttributeNamePolicy): policy},
	}); err != nil {
		return "", wrapErr("SetQueueAttributes "+qname, err)
	}
	if _, err := t.sns.Subscribe(ctx, &sns.SubscribeInput{
		TopicArn:              aws.String(arn),
		Protocol:              aws.String("sqs"),
		Endpoint:              aws.String(qarn),
		Attributes:            map[string]string{"RawMessageDelivery": "true"},
		ReturnSubscriptionArn: true,
	}); err != nil {
		return "", wrapErr("Subscribe "+qname, err)
	}
	return qurl, nil
}

// ---- Send ----

// Send implements transport.Transport. Messages go out in calls of up to
// 10 (SendMessageBatch, PublishBatch), one call after the other so that
// order is kept.
func (t *Transport) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	if err := t.checkOpen(); err != nil {
		return err
	}
	if to.Name == "" {
		return fmt.Errorf("sqs: Send: %w: empty destination name", transport.ErrInvalid)
	}
	limit := sqsMaxWire
	switch to.Kind {
	case transport.KindTopic:
		limit = snsMaxWire
	case transport.KindQueue:
	case transport.KindReply:
		if !strings.HasPrefix(to.Name, "http://") && !strings.HasPrefix(to.Name, "https://") {
			return fmt.Errorf("sqs: Send %s: %w: a reply address is an SQS queue URL", to, transport.ErrInvalid)
		}
	default:
		return fmt.Errorf("sqs: Send %s: %w: unknown address kind", to, transport.ErrInvalid)
	}
	if len(msgs) == 0 {
		return nil
	}
	wire := make([]wireMsg, len(msgs))
	for i, m := range msgs {
		if m == nil {
			return fmt.Errorf("sqs: Send %s: %w: message %d is nil", to, transport.ErrInvalid, i)
		}
		if s := m.Size(); s > maxMessageSize {
			return sizeError(i, s, maxMessageSize, "Message.Size")
		}
		w, err := encode(m)
		if err != nil {
			return fmt.Errorf("sqs: Send %s: message %d: %w: %w", to, i, transport.ErrInvalid, err)
		}
		if w.size > limit {
			return sizeError(i, w.size, limit, "the encoded message")
		}
		wire[i] = w
	}
	fifo := t.opts.FIFO && to.Kind != transport.KindReply
	var groups []string
	if fifo {
		// Keyless messages of one Send share a group, so that they keep
		// their order too.
		batchGroup := "sb-batch-" + fifoID(msgs[0].ID)
		if len(batchGroup) > 128 {
			batchGroup = "sb-batch-" + sha256Hex(msgs[0].ID)[:32]
		}
		groups = make([]string, len(msgs))
		for i, m := range msgs {
			if m.Key != "" {
				groups[i] = fifoID(m.Key)
			} else {
				groups[i] = batchGroup
			}
		}
	}

	switch to.Kind {
	case transport.KindTopic:
		arn, err := t.topicARN(ctx, to.Name, false)
		if err != nil {
			return err
		}
		err = t.publish(ctx, arn, msgs, wire, groups)
		if err != nil && errors.Is(err, transport.ErrNotFound) {
			// The topic was deleted (or the emulator restarted): create
			// it again, as Send to a topic does.
			if arn, err = t.topicARN(ctx, to.Name, true); err != nil {
				return err
			}
			err = t.publish(ctx, arn, msgs, wire, groups)
		}
		return err
	case transport.KindQueue:
		qname := QueueName(to.Name, t.opts.FIFO)
		u, err := t.queueURL(ctx, qname, false)
		if err != nil {
			return err
		}
		err = t.sendSQS(ctx, u, msgs, wire, groups)
		if errors.Is(err, transport.ErrNotFound) {
			t.dropQueue(qname)
		}
		return err
	default: // reply
		err := t.sendSQS(ctx, to.Name, msgs, wire, nil)
		if errors.Is(err, transport.ErrNotFound) {
			t.log.Debug("sqs: reply inbox gone; reply dropped", "inbox", to.Name)
			return nil
		}
		return err
	}
}

// chunks splits n encoded messages into runs of at most per entries and
// maxBytes bytes.
func chunks(wire []wireMsg, per, maxBytes int) [][2]int {
	var out [][2]int
	start, bytes := 0, 0
	for i, w := range wire {
		if i > start && (i-start == per || bytes+w.size > maxBytes) {
			out = append(out, [2]int{start, i})
			start, bytes = i, 0
		}
		bytes += w.size
	}
	return append(out, [2]int{start, len(wire)})
}

func (t *Transport) sendSQS(ctx context.Context, qurl string, msgs []*transport.Message, wire []wireMsg, groups []string) error {
	nonce := sendNonce()
	for _, c := range chunks(wire, maxBatch, sqsMaxBatch) {
		entries := make([]sqstypes.SendMessageBatchRequestEntry, 0, c[1]-c[0])
		for i := c[0]; i < c[1]; i++ {
			e := sqstypes.SendMessageBatchRequestEntry{
				Id:                aws.String(strconv.Itoa(i)),
				MessageBody:       aws.String(wire[i].body),
				MessageAttributes: sqsAttrs(wire[i].attrs),
			}
			if groups != nil {
				e.MessageGroupId = aws.String(groups[i])
				e.MessageDeduplicationId = aws.String(fifoID(msgs[i].ID + "/" + nonce))
			}
			entries = append(entries, e)
		}
		out, err := t.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(qurl), Entries: entries})
		if err != nil {
			return wrapErr("SendMessageBatch", err)
		}
		if len(out.Failed) > 0 {
			var codes, texts []string
			for _, f := range out.Failed {
				codes = append(codes, aws.ToString(f.Code))
				texts = append(texts, aws.ToString(f.Message))
			}
			return batchErr("SendMessageBatch", codes, texts)
		}
	}
	return nil
}

func (t *Transport) publish(ctx context.Context, arn string, msgs []*transport.Message, wire []wireMsg, groups []string) error {
	nonce := sendNonce()
	for _, c := range chunks(wire, snsPublishBatch, snsMaxBatch) {
		entries := make([]snstypes.PublishBatchRequestEntry, 0, c[1]-c[0])
		for i := c[0]; i < c[1]; i++ {
			e := snstypes.PublishBatchRequestEntry{
				Id:                aws.String(strconv.Itoa(i)),
				Message:           aws.String(wire[i].body),
				MessageAttributes: snsAttrs(wire[i].attrs),
			}
			if groups != nil {
				e.MessageGroupId = aws.String(groups[i])
				e.MessageDeduplicationId = aws.String(fifoID(msgs[i].ID + "/" + nonce))
			}
			entries = append(entries, e)
		}
		out, err := t.sns.PublishBatch(ctx, &sns.PublishBatchInput{TopicArn: aws.String(arn), PublishBatchRequestEntries: entries})
		if err != nil {
			return wrapErr("PublishBatch", err)
		}
		if len(out.Failed) > 0 {
			var codes, texts []string
			for _, f := range out.Failed {
				codes = append(codes, aws.ToString(f.Code))
				texts = append(texts, aws.ToString(f.Message))
			}
			return batchErr("PublishBatch", codes, texts)
		}
	}
	return nil
}

func sqsAttrs(a []wireAttr) map[string]sqstypes.MessageAttributeValue {
	if len(a) == 0 {
		return nil
	}
	m := make(map[string]sqstypes.MessageAttributeValue, len(a))
	for _, x := range a {
		m[x.name] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(x.value)}
	}
	return m
}

func snsAttrs(a []wireAttr) map[string]snstypes.MessageAttributeValue {
	if len(a) == 0 {
		return nil
	}
	m := make(map[string]snstypes.MessageAttributeValue, len(a))
	for _, x := range a {
		m[x.name] = snstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(x.value)}
	}
	return m
}

// ---- Subscribe and OpenInbox ----

// Subscribe implements transport.Transport.
func (t *Transport) Subscribe(ctx context.Context, from transport.Address, group string, opts transport.SubscribeOptions) (transport.Subscription, error) {
	if err := t.checkOpen(); err != nil {
		return nil, err
	}
	if opts.MaxInFlight < 1 {
		opts.MaxInFlight = 1
	}
	var declare func(ctx context.Context, fresh bool) (string, error)
	switch {
	case from.Kind == transport.KindTopic && from.Name != "" && group != "":
		declare = func(ctx context.Context, fresh bool) (string, error) {
			return t.declareGroup(ctx, from.Name, group, fresh)
		}
	case from.Kind == transport.KindQueue && from.Name != "" && group == "":
		qname := QueueName(from.Name, t.opts.FIFO)
		declare = func(ctx context.Context, fresh bool) (string, error) {
			return t.createQueue(ctx, qname, nil)
		}
	default:
		return nil, fmt.Errorf("sqs: Subscribe %s group %q: %w: want a topic with a group or a queue without one",
			from, group, transport.ErrInvalid)
	}
	qurl, err := declare(ctx, false)
	if err != nil {
		return nil, err
	}
	receivers := t.opts.Receivers
	if receivers == 0 {
		receivers = 1
		if t.opts.FIFO && !opts.LowVolume {
			receivers = min((opts.MaxInFlight+maxBatch-1)/maxBatch, 10)
		}
	}
	s := newSubscription(t, from.String(), qurl, declare, opts.MaxInFlight, receivers)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		s.Close()
		return nil, fmt.Errorf("sqs: transport: %w", transport.ErrClosed)
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	if from.Kind == transport.KindQueue {
		// Counted (Consumers) from the moment Subscribe returns.
		l := newLease(t, s.p)
		if err := l.take(ctx); err != nil {
			s.Close()
			return nil, err
		}
		s.mu.Lock()
		s.lease = l
		s.mu.Unlock()
	}
	s.start()
	return s, nil
}

// OpenInbox implements transport.Transport: a standard queue named
// "<InboxPrefix>_R<random>", deleted on Close; its address is its URL.
func (t *Transport) OpenInbox(ctx context.Context) (transport.Inbox, error) {
	if err := t.checkOpen(); err != nil {
		return nil, err
	}
	var rnd [10]byte
	_, _ = rand.Read(rnd[:])
	qname := inboxQueueName(t.opts.InboxPrefix, hex.EncodeToString(rnd[:]))
	// Retention of 1 hour: an inbox left behind by a crashed client holds
	// nothing for long.
	attrs := map[string]string{"MessageRetentionPeriod": "3600"}
	declare := func(ctx context.Context, fresh bool) (string, error) {
		return t.createQueue(ctx, qname, attrs)
	}
	qurl, err := declare(ctx, false)
	if err != nil {
		return nil, err
	}
	ib := newInbox(t, qname, qurl, declare)
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		ib.Close()
		return nil, fmt.Errorf("sqs: transport: %w", transport.ErrClosed)
	}
	t.inboxes[ib] = struct{}{}
	t.mu.Unlock()
	ib.start()
	return ib, nil
}

// sendNonce returns a value unique to one Send call. FIFO deduplication
// IDs are the message ID and this nonce: the SDK's retries of one call are
// deduplicated by the service, while a message sent again on purpose (a
// redriven dead letter) is delivered. Deduplication of the application's
// own duplicates is package dedup's job, on every transport alike.
func sendNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validRegion reports whether s looks like an AWS region name
// (us-east-1, eu-central-2, or an emulator's own lower-case name).
func validRegion(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
