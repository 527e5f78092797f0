package kafka

import (
	"context"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// Delivery counts on Kafka (SEMANTICS.md, "Crash loops"). Kafka has no
// delivery count, so the adapter keeps one durably in the metadata of the
// group's committed offset, for the one message that matters: the oldest
// unfinished message of each partition, which is the first one a member
// fetches after it is assigned the partition. Before handing that message
// out, the member commits its offset again (the position does not move)
// with the metadata "sb-attempts:<offset>:<n>", n being one more than the
// count the metadata held for that offset. A member that crashes while
// handling it leaves the count behind, so the next member reports n+1, and
// package messaging can dead-letter a message that keeps crashing its
// consumers after MaxAttempts deliveries. Any later message of the
// partition is reported as a first delivery (1): the cost is one extra
// offset commit per partition assignment, nothing per message. Moving the
// position past the message (the ordinary commits) drops the metadata.

const attemptsPrefix = "sb-attempts:"

// formatAttempts returns the commit metadata recording n deliveries of
// the message at offset.
func formatAttempts(offset int64, n int) string {
	return attemptsPrefix + strconv.FormatInt(offset, 10) + ":" + strconv.Itoa(n)
}

// parseAttempts reads commit metadata; ok is false when it holds no count.
func parseAttempts(meta string) (offset int64, n int, ok bool) {
	rest, found := strings.CutPrefix(meta, attemptsPrefix)
	if !found {
		return 0, 0, false
	}
	o, c, found := strings.Cut(rest, ":")
	if !found {
		return 0, 0, false
	}
	offset, err1 := strconv.ParseInt(o, 10, 64)
	n, err2 := strconv.Atoi(c)
	if err1 != nil || err2 != nil || n < 0 {
		return 0, 0, false
	}
	return offset, n, true
}

// loadAttempts reads the delivery counts the group's committed offsets
// record for the partitions of g. A failure leaves them unknown (counts
// start again at 1).
func (s *subscription) loadAttempts(ctx context.Context, g *generation) {
	ids := make([]int, 0, len(g.parts))
	for id := range g.parts {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := s.t.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{
		GroupID: s.group,
		Topics:  map[string][]int{s.topic: ids},
	})
	if err == nil && resp.Error != nil {
		err = resp.Error
	}
	if err != nil {
		s.log.Debug("kafka: cannot read delivery counts", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fp := range resp.Topics[s.topic] {
		p := g.parts[fp.Partition]
		if p == nil || fp.Error != nil {
			continue
		}
		if off, n, ok := parseAttempts(fp.Metadata); ok && off == fp.CommittedOffset {
			p.attemptsAt, p.attempts = off, n
		}
	}
}

// countDelivery returns the delivery count of the message at offset,
// fetched from p: for the first message fetched in the generation, the
// recorded count plus one, recorded durably before the message is handed
// out; otherwise 1 (or the count already recorded for that offset, when a
// rewind fetches it again).
func (s *subscription) countDelivery(ctx context.Context, p *partition, offset int64) int {
	s.mu.Lock()
	if p.counted {
		n := 1
		if offset == p.attemptsAt {
			n = p.attempts
		}
		s.mu.Unlock()
		return n
	}
	n := 1
	if offset == p.attemptsAt {
		n = p.attempts + 1
	}
	gen := p.g.gen
	s.mu.Unlock()
	// Record the count before handing the message out: a crash while it
	// is handled must count. Committing offset itself leaves the
	// position where it is.
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := s.t.client.OffsetCommit(cctx, &kafkago.OffsetCommitRequest{
			GroupID:      s.group,
			GenerationID: int(gen.ID),
			MemberID:     gen.MemberID,
			Topics:       map[string][]kafkago.OffsetCommit{s.topic: {{Partition: p.id, Offset: offset, Metadata: formatAttempts(offset, n)}}},
		})
		cancel()
		if err == nil {
			for _, pr := range resp.Topics[s.topic] {
				if pr.Error != nil {
					err = pr.Error
				}
			}
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil || attempt >= 4 {
			// The generation is ending, or the coordinator refuses: hand
			// the message out with the count it has; it is not recorded.
			s.log.Debug("kafka: cannot record a delivery count", "partition", p.id, "offset", offset, "err", err)
			break
		}
		select {
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	p.counted = true
	p.attemptsAt, p.attempts = offset, n
	if offset > p.committed {
		p.committed = offset
	}
	s.mu.Unlock()
	return n
}
