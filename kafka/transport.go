package kafka

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/switchboard-go/switchboard/internal/wait"
	"github.com/switchboard-go/switchboard/transport"
)

// Transport is a Switchboard transport over Apache Kafka (kafka-go). Its
// methods are safe for concurrent use.
type Transport struct {
	brokers []string
	opts    Options
	log     *slog.Logger

	kt       *kafkago.Transport
	client   *kafkago.Client
	producer *producer
	dialer   *kafkago.Dialer

	bg     context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	subs     map[*subscription]struct{}
	inboxes  map[*inbox]struct{}
	known    sync.Map   // Kafka topic name -> struct{}: known to exist
	declMu   sync.Mutex // serialises group declarations of this client
	batchSeq atomic.Uint64
}

var _ transport.Transport = (*Transport)(nil)

// Open connects to the brokers (host:port) with opts. It checks that the
// cluster answers before it returns.
func Open(ctx context.Context, brokers []string, opts Options) (*Transport, error) {
	if len(brokers) == 0 {
		return nil, fmt.Errorf("%w: kafka: no broker address", transport.ErrInvalid)
	}
	opts.setDefaults()
	bg, cancel := context.WithCancel(context.Background())
	t := &Transport{
		brokers: append([]string(nil), brokers...),
		opts:    opts,
		log:     opts.Logger,
		bg:      bg,
		cancel:  cancel,
		subs:    make(map[*subscription]struct{}),
		inboxes: make(map[*inbox]struct{}),
		dialer:  opts.dialer(),
	}
	dial := opts.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	t.kt = &kafkago.Transport{
		Dial:        dial,
		DialTimeout: opts.DialTimeout,
		IdleTimeout: 30 * time.Second,
		MetadataTTL: opts.MetadataTTL,
		ClientID:    opts.ClientID,
		TLS:         opts.TLS,
		SASL:        opts.SASL,
		Context:     bg,
	}
	addr := kafkago.TCP(t.brokers...)
	t.client = &kafkago.Client{Addr: addr, Transport: t.kt, Timeout: 10 * time.Second}
	var bal kafkago.Balancer = kafkago.CRC32Balancer{}
	if opts.Balancer == BalancerMurmur2 {
		bal = kafkago.Murmur2Balancer{}
	}
	t.producer = newProducer(t.client, batchBalancer{keyed: bal}, opts.BatchTimeout, int64(opts.MaxMessageBytes), t.log)
	// Check the cluster answers.
	if _, err := retry(ctx, func() (*kafkago.MetadataResponse, error) {
		return t.saslChecked(t.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{}}))
	}); err != nil {
		t.shutdown()
		return nil, t.wrapConn("connect", err)
	}
	return t, nil
}

// shutdown releases the client resources.
func (t *Transport) shutdown() {
	t.producer.close()
	t.cancel()
	t.kt.CloseIdleConnections()
}

// Capabilities reports what Kafka does natively.
func (t *Transport) Capabilities() transport.Capabilities {
	return transport.Capabilities{
		Name:           "kafka",
		MaxMessageSize: t.maxMessageSize(),
		MaxHeaders:     maxHeaders,
		OrderedByKey:   true,
		DeliveryCount:  true, // emulated: see attempts.go
	}
}

// maxHeaders bounds the headers of a message so that the record overhead
// stays small next to MaxMessageBytes.
const maxHeaders = 256

// maxMessageSize leaves room, under the broker's message.max.bytes, for the
// record batch, the envelope headers and the per-header overhead.
func (t *Transport) maxMessageSize() int {
	return t.opts.MaxMessageBytes - 16*1024
}

// As supports **kafkago.Client (admin requests and produce requests) and
// **kafkago.Transport (the connection pool) of github.com/segmentio/kafka-go.
func (t *Transport) As(target any) bool {
	switch p := target.(type) {
	case **kafkago.Client:
		*p = t.client
	case **kafkago.Transport:
		*p = t.kt
	default:
		return false
	}
	return true
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// Close closes the subscriptions and inboxes still open and releases the
// connections. It is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
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
	for _, s := range subs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Close() }()
	}
	for _, ib := range ibs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = ib.Close() }()
	}
	wg.Wait()
	t.shutdown()
	return nil
}

func (t *Transport) errClosed() error {
	return fmt.Errorf("%w: kafka transport", transport.ErrClosed)
}

// wrap marks a kafka-go error with the matching transport sentinel.
func (t *Transport) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil {
				err = e
				break
			}
		}
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("kafka: %s: %w", op, err)
	case errors.Is(err, kafkago.UnknownTopicOrPartition), errors.Is(err, protocol.ErrNoTopic):
		return fmt.Errorf("kafka: %s: %w: %w", op, transport.ErrNotFound, err)
	case errors.Is(err, kafkago.MessageSizeTooLarge), isTooLarge(err):
		return fmt.Errorf("kafka: %s: %w: %w", op, transport.ErrMessageTooLarge, err)
	case errors.Is(err, kafkago.InvalidTopic), errors.Is(err, kafkago.InvalidPartitionNumber),
		errors.Is(err, kafkago.InvalidReplicationFactor), errors.Is(err, kafkago.InvalidConfiguration):
		return fmt.Errorf("kafka: %s: %w: %w", op, transport.ErrInvalid, err)
	case isUnavailable(err):
		return fmt.Errorf("kafka: %s: %w: %w", op, transport.ErrUnavailable, err)
	}
	return fmt.Errorf("kafka: %s: %w", op, err)
}

func isTooLarge(err error) bool {
	var e kafkago.MessageTooLargeError
	return errors.As(err, &e)
}

func isUnavailable(err error) bool {
	var ke kafkago.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}

// ---------------------------------------------------------------------------
// Topics.

// ensureTopic creates the Kafka topic if it does not exist.
func (t *Transport) ensureTopic(ctx context.Context, name string, partitions int) error {
	if _, ok := t.known.Load(name); ok {
		return nil
	}
	resp, err := retry(ctx, func() (*kafkago.CreateTopicsResponse, error) {
		return t.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{
			Topics: []kafkago.TopicConfig{{Topic: name, NumPartitions: partitions, ReplicationFactor: t.opts.Replication}},
		})
	})
	if err != nil {
		return t.wrap("create topic "+name, err)
	}
	if e := resp.Errors[name]; e != nil && !errors.Is(e, kafkago.TopicAlreadyExists) {
		return t.wrap("create topic "+name, e)
	}
	t.known.Store(name, struct{}{})
	return nil
}

// exists reports whether the Kafka topic exists, asking the cluster (not
// the metadata cache) when it is not known to this client.
func (t *Transport) exists(ctx context.Context, name string) (bool, error) {
	if _, ok := t.known.Load(name); ok {
		return true, nil
	}
	resp, err := retry(ctx, func() (*kafkago.DescribeConfigsResponse, error) {
		return t.client.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{
			Resources: []kafkago.DescribeConfigRequestResource{{
				ResourceType: kafkago.ResourceTypeTopic,
				ResourceName: name,
				ConfigNames:  []string{"cleanup.policy"},
			}},
		})
	})
	if err != nil {
		return false, t.wrap("describe topic "+name, err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			if errors.Is(r.Error, kafkago.UnknownTopicOrPartition) {
				return false, nil
			}
			return false, t.wrap("describe topic "+name, r.Error)
		}
	}
	t.known.Store(name, struct{}{})
	return true, nil
}

// partitionCount returns the number of partitions of a topic.
func (t *Transport) partitionCount(ctx context.Context, name string) (int, error) {
	for attempt := 0; ; attempt++ {
		md, err := retry(ctx, func() (*kafkago.MetadataResponse, error) {
			return t.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{name}})
		})
		if err != nil {
			return 0, t.wrap("metadata "+name, err)
		}
		for _, tp := range md.Topics {
			if tp.Name == name && tp.Error == nil && len(tp.Partitions) > 0 {
				return len(tp.Partitions), nil
			}
		}
		// The metadata cache may not know the topic yet.
		if attempt >= 50 {
			return 0, fmt.Errorf("kafka: metadata of topic %s: %w", name, transport.ErrUnavailable)
		}
		if err := t.forceMetadata(ctx, name); err != nil {
			return 0, err
		}
	}
}

// forceMetadata refreshes the cached metadata of a topic that exists.
func (t *Transport) forceMetadata(ctx context.Context, name string) error {
	// A metadata request allowing auto-creation of a topic missing from
	// the cache makes kafka-go ask the cluster and wait until the topic
	// appears; the topic is known to exist, so nothing is created.
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := t.kt.RoundTrip(ctx, t.client.Addr, metadataRequest(name))
	if err != nil && ctx.Err() == nil {
		return t.wrap("metadata "+name, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Send.

// Send writes msgs to the destination with acks=all, in one batch per
// partition. See the package documentation for the mapping.
func (t *Transport) Send(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
	if t.isClosed() {
		return t.errClosed()
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafka: send to %s: %w", to, err) // send nothing
	}
	name, err := topicFor(to)
	if err != nil {
		if to.Kind == transport.KindReply && to.Name != "" {
			// Not the address of an inbox of this adapter, so not of an
			// inbox that exists: drop, as for a closed inbox.
			t.log.Debug("kafka: reply to an address that is no inbox dropped", "address", to.Name)
			return nil
		}
		return err
	}
	max := t.maxMessageSize()
	for _, m := range msgs {
		if m.Size() > max {
			return fmt.Errorf("%w: kafka: message %q is %d bytes, the limit is %d", transport.ErrMessageTooLarge, m.ID, m.Size(), max)
		}
		if len(m.Headers) > maxHeaders {
			return fmt.Errorf("%w: kafka: message %q has %d headers, the limit is %d", transport.ErrMessageTooLarge, m.ID, len(m.Headers), maxHeaders)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	switch to.Kind {
	case transport.KindTopic:
		if err := t.ensureTopic(ctx, name, t.opts.Partitions); err != nil {
			return err
		}
	case transport.KindQueue:
		ok, err := t.exists(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("kafka: send to queue %q: %w", to.Name, transport.ErrNotFound)
		}
	case transport.KindReply:
		ok, err := t.exists(ctx, name)
		if err != nil {
			return err
		}
		if !ok {
			return nil // the inbox is gone: drop
		}
	}
	// Unkeyed messages of one Send go to one partition, so that the batch
	// keeps its order; keyed ones go to their key's partition.
	hint := int(t.batchSeq.Add(1)) + randInt()
	if hint < 0 {
		hint = -hint
	}
	kms := make([]kafkago.Message, len(msgs))
	for i, m := range msgs {
		kms[i] = encode(name, m, hint)
	}
	// A consumer may see the records before the producer sees the
	// broker's acknowledgement: when ctx ends while the acknowledgement is
	// on its way, wait for it a little (sendGrace) rather than report a
	// failure for messages the broker accepted.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(sendGrace, cancel) })
	defer stop()
	err = t.producer.write(wctx, name, kms)
	if err != nil && wctx.Err() != nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err != nil {
		if errors.Is(t.wrap("", err), transport.ErrNotFound) {
			t.known.Delete(name) // deleted meanwhile
			if to.Kind == transport.KindReply {
				return nil // the inbox is gone: drop
			}
		}
		return t.wrap("send to "+to.String(), err)
	}
	return nil
}

// sendGrace is how long Send waits for acknowledgements in flight after
// its context ended.
const sendGrace = 200 * time.Millisecond

func randInt() int {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return int(binary.LittleEndian.Uint32(b[:]) & 0x3fffffff)
}

// batchBalancer sends keyed messages to their key's partition with the
// configured hash, and unkeyed ones to the partition hinted in
// Message.Partition (one per Send batch).
type batchBalancer struct{ keyed kafkago.Balancer }

func (b batchBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	if len(msg.Key) > 0 {
		return b.keyed.Balance(msg, partitions...)
	}
	return partitions[msg.Partition%len(partitions)]
}

// ---------------------------------------------------------------------------
// Declare, Subscribe, OpenInbox.

// Declare creates the queue's topic if it does not exist.
func (t *Transport) Declare(ctx context.Context, a transport.Address) error {
	if t.isClosed() {
		return t.errClosed()
	}
	if a.Kind != transport.KindQueue {
		return fmt.Errorf("%w: kafka: Declare needs a queue address, got %s", transport.ErrInvalid, a)
	}
	name, err := topicFor(a)
	if err != nil {
		return err
	}
	return t.ensureTopic(ctx, name, t.opts.Partitions)
}

// Subscribe joins the consumer group of a topic (declaring it first: a new
// group starts at the current end of every partition) or the fixed group
// of a queue (which starts at the earliest offset).
func (t *Transport) Subscribe(ctx context.Context, from transport.Address, group string, opts transport.SubscribeOptions) (transport.Subscription, error) {
	if t.isClosed() {
		return nil, t.errClosed()
	}
	switch from.Kind {
	case transport.KindTopic:
		if group == "" {
			return nil, fmt.Errorf("%w: kafka: Subscribe to %s needs a group", transport.ErrInvalid, from)
		}
	case transport.KindQueue:
		if group != "" {
			return nil, fmt.Errorf("%w: kafka: Subscribe to %s takes no group", transport.ErrInvalid, from)
		}
	default:
		return nil, fmt.Errorf("%w: kafka: cannot Subscribe to %s", transport.ErrInvalid, from)
	}
	name, err := topicFor(from)
	if err != nil {
		return nil, err
	}
	if err := t.ensureTopic(ctx, name, t.opts.Partitions); err != nil {
		return nil, err
	}
	gid := groupFor(name, from.Kind, group)
	if from.Kind == transport.KindTopic {
		if err := t.declareGroup(ctx, name, gid); err != nil {
			return nil, err
		}
	}
	s, err := t.newSubscription(name, gid, opts)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = s.Close()
		return nil, t.errClosed()
	}
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	if from.Kind == transport.KindQueue && !s.awaitJoin(ctx, t.opts.SessionTimeout+t.opts.RebalanceTimeout) {
		t.log.Debug("kafka: queue consumer not yet a group member when Subscribe returns", "queue", from.Name)
	}
	return s, nil
}

// declareGroup makes sure the group has committed offsets for the topic:
// on first declaration it commits the current end offset of every
// partition, so that the group gets exactly the messages published after.
func (t *Transport) declareGroup(ctx context.Context, topic, gid string) error {
	t.declMu.Lock()
	defer t.declMu.Unlock()
	n, err := t.partitionCount(ctx, topic)
	if err != nil {
		return err
	}
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	for attempt := 0; ; attempt++ {
		of, err := t.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: gid, Topics: map[string][]int{topic: parts}})
		if err == nil && of.Error != nil && !errors.Is(of.Error, kafkago.GroupIdNotFound) {
			err = of.Error
		}
		if err != nil {
			if attempt < 20 && isUnavailable(err) && ctx.Err() == nil {
				wait.Sleep(ctx, nil, 100*time.Millisecond)
				continue
			}
			return t.wrap("declare group "+gid, err)
		}
		for _, p := range of.Topics[topic] {
			if p.Error == nil && p.CommittedOffset >= 0 {
				return nil // declared before
			}
		}
		lo, err := retry(ctx, func() (*kafkago.ListOffsetsResponse, error) {
			return t.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: lastOffsets(n)}})
		})
		if err != nil {
			return t.wrap("declare group "+gid, err)
		}
		commits := make([]kafkago.OffsetCommit, 0, n)
		for _, p := range lo.Topics[topic] {
			if p.Error != nil {
				return t.wrap("declare group "+gid, p.Error)
			}
			commits = append(commits, kafkago.OffsetCommit{Partition: p.Partition, Offset: p.LastOffset})
		}
		if len(commits) != n {
			return fmt.Errorf("kafka: declare group %s: got end offsets of %d of %d partitions: %w", gid, len(commits), n, transport.ErrUnavailable)
		}
		oc, err := t.client.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: gid, GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{topic: commits}})
		if err == nil {
			for _, p := range oc.Topics[topic] {
				if p.Error != nil {
					err = p.Error
					break
				}
			}
		}
		if err == nil {
			return nil
		}
		// The group may have become active meanwhile (another client
		// declared it): look again.
		if attempt >= 20 || ctx.Err() != nil {
			return t.wrap("declare group "+gid, err)
		}
		t.log.Debug("kafka: declare group: commit failed, retrying", "group", gid, "err", err)
		wait.Sleep(ctx, nil, 100*time.Millisecond)
	}
}

// retry runs op until it succeeds, fails with an error the cluster will
// not recover from, ctx ends, or about 10 attempts (about 5s) were made:
// connections of the pool may be stale after a broker restart.
func retry[T any](ctx context.Context, op func() (T, error)) (T, error) {
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		v, err := op()
		if err == nil || attempt >= 10 || ctx.Err() != nil || !isUnavailable(err) {
			return v, err
		}
		wait.Sleep(ctx, nil, delay)
		if delay < time.Second {
			delay *= 2
		}
	}
}

func lastOffsets(n int) []kafkago.OffsetRequest {
	r := make([]kafkago.OffsetRequest, n)
	for i := range r {
		r[i] = kafkago.LastOffsetOf(i)
	}
	return r
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
