package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/switchboard-go/switchboard/transport"
)

var _ transport.Admin = (*Transport)(nil)

// target is what an Admin call acts on: a Kafka topic and the group that
// reads it (a topic's consumer group, or a queue's own group).
type target struct {
	topic string // Kafka topic
	gid   string // Kafka consumer group
	queue bool   // a queue: its group reads from the earliest offset
	what  string // for errors
}

func (t *Transport) target(a transport.Address, group string) (target, error) {
	if t.isClosed() {
		return target{}, t.errClosed()
	}
	switch a.Kind {
	case transport.KindTopic:
		if group == "" {
			return target{}, fmt.Errorf("%w: kafka: a consumer group of %s needs a group name", transport.ErrInvalid, a)
		}
	case transport.KindQueue:
		if group != "" {
			return target{}, fmt.Errorf("%w: kafka: queue %q takes no group", transport.ErrInvalid, a.Name)
		}
	default:
		return target{}, fmt.Errorf("%w: kafka: no admin operations on a %s address", transport.ErrInvalid, a.Kind)
	}
	name, err := topicFor(a)
	if err != nil {
		return target{}, err
	}
	tg := target{topic: name, gid: groupFor(name, a.Kind, group), queue: a.Kind == transport.KindQueue}
	if tg.queue {
		tg.what = "queue " + a.Name
	} else {
		tg.what = fmt.Sprintf("group %s of topic %s", group, a.Name)
	}
	return tg, nil
}

// partitions checks that the target exists (asking the cluster, not this
// client's cache; creating nothing) and returns its committed offset per
// partition (-1 where the group has none) and its partition count. A
// topic's group exists once declared: it has committed offsets.
func (t *Transport) partitions(ctx context.Context, tg target) ([]int64, error) {
	t.known.Delete(tg.topic)
	ok, err := t.exists(ctx, tg.topic)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("kafka: %s: %w", tg.what, transport.ErrNotFound)
	}
	n, err := t.partitionCount(ctx, tg.topic)
	if err != nil {
		return nil, err
	}
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	of, err := retry(ctx, func() (*kafkago.OffsetFetchResponse, error) {
		return t.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: tg.gid, Topics: map[string][]int{tg.topic: parts}})
	})
	if err == nil && of.Error != nil && !errors.Is(of.Error, kafkago.GroupIdNotFound) {
		err = of.Error
	}
	if err != nil {
		return nil, t.wrap("offsets of "+tg.what, err)
	}
	committed := make([]int64, n)
	for i := range committed {
		committed[i] = -1
	}
	declared := false
	for _, p := range of.Topics[tg.topic] {
		if p.Error == nil && p.CommittedOffset >= 0 && p.Partition < n {
			committed[p.Partition] = p.CommittedOffset
			declared = true
		}
	}
	if !tg.queue && !declared {
		return nil, fmt.Errorf("kafka: %s: %w", tg.what, transport.ErrNotFound)
	}
	return committed, nil
}

// bounds returns the first and end offsets of every partition.
func (t *Transport) bounds(ctx context.Context, topic string, n int) (first, end []int64, err error) {
	reqs := make([]kafkago.OffsetRequest, 0, 2*n)
	for i := range n {
		reqs = append(reqs, kafkago.FirstOffsetOf(i), kafkago.LastOffsetOf(i))
	}
	lo, err := retry(ctx, func() (*kafkago.ListOffsetsResponse, error) {
		return t.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	})
	if err != nil {
		return nil, nil, t.wrap("offsets of "+topic, err)
	}
	first, end = make([]int64, n), make([]int64, n)
	got := 0
	for _, p := range lo.Topics[topic] {
		if p.Error != nil {
			return nil, nil, t.wrap("offsets of "+topic, p.Error)
		}
		if p.Partition < n {
			first[p.Partition], end[p.Partition] = p.FirstOffset, p.LastOffset
			got++
		}
	}
	if got != n {
		return nil, nil, fmt.Errorf("kafka: offsets of %s: got %d of %d partitions: %w", topic, got, n, transport.ErrUnavailable)
	}
	return first, end, nil
}

// deleteGroup deletes a Kafka consumer group; missing reports whether it
// did not exist.
func (t *Transport) deleteGroup(ctx context.Context, gid, what string) (missing bool, err error) {
	resp, err := retry(ctx, func() (*kafkago.DeleteGroupsResponse, error) {
		return t.client.DeleteGroups(ctx, &kafkago.DeleteGroupsRequest{GroupIDs: []string{gid}})
	})
	if err == nil {
		err = resp.Errors[gid]
	}
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, kafkago.GroupIdNotFound):
		return true, nil
	case errors.Is(err, kafkago.NonEmptyGroup):
		return false, fmt.Errorf("%w: kafka: delete %s: consumers are connected; close them first: %w", transport.ErrInvalid, what, err)
	}
	return false, t.wrap("delete "+what, err)
}

// DeleteGroup implements transport.Admin with DeleteGroups: the group's
// committed offsets go, so a later Subscribe declares it anew at the end
// of the topic. Kafka refuses to delete a group with members (ErrInvalid).
func (t *Transport) DeleteGroup(ctx context.Context, topic, group string) error {
	tg, err := t.target(transport.Topic(topic), group)
	if err != nil {
		return err
	}
	if _, err := t.partitions(ctx, tg); err != nil {
		return err
	}
	missing, err := t.deleteGroup(ctx, tg.gid, tg.what)
	if err == nil && missing {
		err = fmt.Errorf("kafka: %s: %w", tg.what, transport.ErrNotFound)
	}
	return err
}

// DeleteQueue implements transport.Admin: it deletes the queue's Kafka
// topic (DeleteTopics) and its consumer group. Kafka deletes topics
// asynchronously: on a real cluster, declaring the queue again at once
// may fail until the deletion completes.
func (t *Transport) DeleteQueue(ctx context.Context, name string) error {
	tg, err := t.target(transport.Queue(name), "")
	if err != nil {
		return err
	}
	if _, err := t.partitions(ctx, tg); err != nil {
		return err
	}
	resp, err := retry(ctx, func() (*kafkago.DeleteTopicsResponse, error) {
		return t.client.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{tg.topic}})
	})
	if err == nil {
		err = resp.Errors[tg.topic]
	}
	t.known.Delete(tg.topic)
	if err != nil {
		return t.wrap("delete "+tg.what, err)
	}
	_, err = t.deleteGroup(ctx, tg.gid, tg.what)
	return err
}

// Purge implements transport.Admin: it commits the end offset of every
// partition for the group, as a declaration does. Kafka accepts the commit
// only while the group has no members (ErrInvalid otherwise).
func (t *Transport) Purge(ctx context.Context, a transport.Address, group string) error {
	tg, err := t.target(a, group)
	if err != nil {
		return err
	}
	committed, err := t.partitions(ctx, tg)
	if err != nil {
		return err
	}
	_, end, err := t.bounds(ctx, tg.topic, len(committed))
	if err != nil {
		return err
	}
	commits := make([]kafkago.OffsetCommit, len(end))
	for i, off := range end {
		commits[i] = kafkago.OffsetCommit{Partition: i, Offset: off}
	}
	oc, err := retry(ctx, func() (*kafkago.OffsetCommitResponse, error) {
		return t.client.OffsetCommit(ctx, &kafkago.OffsetCommitRequest{GroupID: tg.gid, GenerationID: -1, Topics: map[string][]kafkago.OffsetCommit{tg.topic: commits}})
	})
	if err == nil {
		for _, p := range oc.Topics[tg.topic] {
			if p.Error != nil {
				err = p.Error
				break
			}
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, kafkago.UnknownMemberId), errors.Is(err, kafkago.IllegalGeneration), errors.Is(err, kafkago.RebalanceInProgress):
		return fmt.Errorf("%w: kafka: purge %s: consumers are connected; close them first: %w", transport.ErrInvalid, tg.what, err)
	}
	return t.wrap("purge "+tg.what, err)
}

// start returns where the group reads each partition from: its committed
// offset, or (a queue's group before its first commit) the first offset.
func start(committed, first []int64) []int64 {
	out := make([]int64, len(committed))
	for i, c := range committed {
		out[i] = max(c, first[i])
	}
	return out
}

// Inspect implements transport.Admin: Messages is the records between the
// group's position and the end of each partition; Consumers is the
// group's members (DescribeGroups).
func (t *Transport) Inspect(ctx context.Context, a transport.Address, group string) (transport.QueueInfo, error) {
	tg, err := t.target(a, group)
	if err != nil {
		return transport.QueueInfo{}, err
	}
	committed, err := t.partitions(ctx, tg)
	if err != nil {
		return transport.QueueInfo{}, err
	}
	first, end, err := t.bounds(ctx, tg.topic, len(committed))
	if err != nil {
		return transport.QueueInfo{}, err
	}
	info := transport.QueueInfo{}
	for i, s := range start(committed, first) {
		info.Messages += int(max(0, end[i]-s))
	}
	dg, err := retry(ctx, func() (*kafkago.DescribeGroupsResponse, error) {
		return t.client.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{tg.gid}})
	})
	if err != nil {
		return transport.QueueInfo{}, t.wrap("describe "+tg.what, err)
	}
	for _, g := range dg.Groups {
		if g.GroupID == tg.gid && g.Error == nil {
			info.Consumers = len(g.Members)
		}
	}
	return info, nil
}

// Peek implements transport.Admin: it fetches from the group's position
// without joining the group or committing, so nothing is consumed. The
// messages of all partitions are returned oldest first (by record time,
// then partition and offset).
func (t *Transport) Peek(ctx context.Context, a transport.Address, group string, limit int) ([]*transport.Message, error) {
	tg, err := t.target(a, group)
	if err != nil {
		return nil, err
	}
	committed, err := t.partitions(ctx, tg)
	if err != nil {
		return nil, err
	}
	first, end, err := t.bounds(ctx, tg.topic, len(committed))
	if err != nil {
		return nil, err
	}
	limit = max(1, limit)
	var kms []kafkago.Message
	for p, off := range start(committed, first) {
		for n := 0; off < end[p] && n < limit; {
			resp, err := t.client.Fetch(ctx, &kafkago.FetchRequest{
				Topic: tg.topic, Partition: p, Offset: off,
				MinBytes: 1, MaxBytes: int64(t.opts.MaxMessageBytes) + 1<<16, MaxWait: 500 * time.Millisecond,
			})
			if err == nil && resp.Error != nil {
				err = resp.Error
			}
			if err != nil {
				return nil, t.wrap("peek "+tg.what, err)
			}
			read := 0
			for n < limit {
				r, err := resp.Records.ReadRecord()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, t.wrap("peek "+tg.what, err)
				}
				km, err := record(tg.topic, p, r)
				if err != nil {
					return nil, t.wrap("peek "+tg.what, err)
				}
				if r.Offset < off || r.Offset >= end[p] {
					continue // a batch may start before the offset asked for
				}
				kms = append(kms, km)
				off = r.Offset + 1
				n++
				read++
			}
			if read == 0 {
				break // nothing more to read (compacted or deleted records)
			}
		}
	}
	slices.SortStableFunc(kms, func(x, y kafkago.Message) int {
		if c := x.Time.Compare(y.Time); c != 0 {
			return c
		}
		if x.Partition != y.Partition {
			return x.Partition - y.Partition
		}
		return int(x.Offset - y.Offset)
	})
	if len(kms) > limit {
		kms = kms[:limit]
	}
	out := make([]*transport.Message, len(kms))
	for i := range kms {
		out[i] = decode(&kms[i])
	}
	return out, nil
}

// record converts a fetched record to a kafka-go message.
func record(topic string, partition int, r *kafkago.Record) (kafkago.Message, error) {
	key, err := protocol.ReadAll(r.Key)
	if err != nil {
		return kafkago.Message{}, err
	}
	value, err := protocol.ReadAll(r.Value)
	if err != nil {
		return kafkago.Message{}, err
	}
	return kafkago.Message{
		Topic: topic, Partition: partition, Offset: r.Offset, Time: r.Time,
		Key: key, Value: value, Headers: r.Headers,
	}, nil
}

var _ transport.ConsumerCounter = (*Transport)(nil)

// Consumers implements transport.ConsumerCounter: the members of the
// queue's consumer group (DescribeGroups; the group is named like the
// queue's topic, "queue.<name>"). A queue's Subscribe returns once its
// consumer joined the group, and Close leaves it (LeaveGroup), so the
// count follows Subscribe and Close at once; a consumer whose process
// died counts until the group's session timeout (Options.SessionTimeout,
// default 10s) expires it. Only a group in state Empty counts 0: a group
// rebalancing may list no member while its members rejoin, and counts as
// unknown, as does a group the broker does not know (Dead: no
// Switchboard consumer has used the queue, or the broker forgot the empty
// group, or the queue is read without that group, as a consumer not
// written with Switchboard may) is no count: an error matching
// errors.ErrUnsupported. A missing queue is an error matching
// ErrNotFound.
func (t *Transport) Consumers(ctx context.Context, queue string) (int, error) {
	tg, err := t.target(transport.Queue(queue), "")
	if err != nil {
		return 0, err
	}
	dg, err := retry(ctx, func() (*kafkago.DescribeGroupsResponse, error) {
		return t.client.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{tg.gid}})
	})
	if err != nil {
		return 0, t.wrap("describe "+tg.what, err)
	}
	for _, g := range dg.Groups {
		if g.GroupID != tg.gid || g.Error != nil {
			continue
		}
		if len(g.Members) > 0 {
			return len(g.Members), nil
		}
		if g.GroupState == "Empty" { // no members (during a rebalance, members may not be listed)
			ok, err := t.exists(ctx, tg.topic)
			if err != nil {
				return 0, err
			}
			if !ok {
				return 0, fmt.Errorf("kafka: %s: %w", tg.what, transport.ErrNotFound)
			}
			return 0, nil
		}
	}
	ok, err := t.exists(ctx, tg.topic)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("kafka: %s: %w", tg.what, transport.ErrNotFound)
	}
	return 0, fmt.Errorf("kafka: consumers of %s: its group %s lists no member and is not Empty (unknown to the broker, or rebalancing): %w", tg.what, tg.gid, errors.ErrUnsupported)
}
