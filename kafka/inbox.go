package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/transport"
)

// inbox is a reply topic of one partition owned by one client, read
// without a consumer group from its end at OpenInbox.
type inbox struct {
	t      *Transport
	topic  string
	r      *kafkago.Reader
	msgs   chan *transport.Message
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// OpenInbox creates a reply topic "reply.<client id>-<random>" and reads it.
func (t *Transport) OpenInbox(ctx context.Context) (transport.Inbox, error) {
	if t.isClosed() {
		return nil, t.errClosed()
	}
	cid := strings.Map(func(r rune) rune {
		if r < 128 && legalTopicChar(byte(r)) && r != '_' {
			return r
		}
		return '-'
	}, t.opts.ClientID)
	if len(cid) > 100 {
		cid = cid[:100]
	}
	name := replyPrefix + cid + "-" + randomHex(8)
	if err := t.ensureTopic(ctx, name, 1); err != nil {
		return nil, err
	}
	// The topic is new: reading from its first offset is reading from its
	// end at OpenInbox.
	ib := &inbox{t: t, topic: name, msgs: make(chan *transport.Message, 1024)}
	ib.ctx, ib.cancel = context.WithCancel(context.Background())
	ib.r = kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        t.brokers,
		Topic:          name,
		Partition:      0,
		Dialer:         t.dialer,
		MinBytes:       1,
		MaxBytes:       4 << 20,
		MaxWait:        t.opts.MaxWait,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		Logger:         kafkaLogger{t.log, slog.LevelDebug},
		// No lag polling: nothing reads Reader.Stats().Lag, and it costs a
		// goroutine and a ListOffsets round trip a minute per reader.
		ReadLagInterval: -1,
		ErrorLogger:     kafkaLogger{t.log, slog.LevelDebug},
	})
	if err := ib.r.SetOffset(kafkago.FirstOffset); err != nil {
		_ = ib.r.Close()
		return nil, t.wrap("open inbox", err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		_ = ib.r.Close()
		ib.cancel()
		return nil, t.errClosed()
	}
	t.inboxes[ib] = struct{}{}
	t.mu.Unlock()
	ib.wg.Add(1)
	go ib.run()
	return ib, nil
}

func (ib *inbox) run() {
	defer ib.wg.Done()
	for {
		km, err := ib.r.FetchMessage(ib.ctx)
		if err != nil {
			if ib.ctx.Err() != nil {
				return
			}
			ib.t.log.Debug("kafka: inbox fetch failed; the reader retries", "topic", ib.topic, "err", err)
			continue
		}
		m := decode(&km)
		select {
		case ib.msgs <- m:
		case <-ib.ctx.Done():
			return
		}
	}
}

// Address is the Kafka topic name of the inbox.
func (ib *inbox) Address() string { return ib.topic }

// Receive returns the replies that arrived, waiting for at least one.
func (ib *inbox) Receive(ctx context.Context) ([]*transport.Message, error) {
	var out []*transport.Message
	select {
	case m := <-ib.msgs:
		out = append(out, m)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-ib.ctx.Done():
		return nil, fmt.Errorf("%w: kafka inbox", transport.ErrClosed)
	}
	for len(out) < 256 {
		select {
		case m := <-ib.msgs:
			out = append(out, m)
			continue
		default:
		}
		break
	}
	return out, nil
}

// Close stops reading and deletes the reply topic.
func (ib *inbox) Close() error {
	ib.once.Do(func() {
		ib.cancel()
		_ = ib.r.Close()
		ib.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := ib.t.client.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{ib.topic}}); err != nil {
			ib.t.log.Debug("kafka: cannot delete reply topic", "topic", ib.topic, "err", err)
		}
		ib.t.known.Delete(ib.topic)
		ib.t.mu.Lock()
		delete(ib.t.inboxes, ib)
		ib.t.mu.Unlock()
	})
	return nil
}
