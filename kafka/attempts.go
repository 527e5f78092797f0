package kafka

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/internal/wait"
)

// Delivery counts on Kafka (SEMANTICS.md R75, "Crash loops"). Kafka has no
// delivery count, so the adapter keeps one durably in the metadata of the
// group's committed offset, for every message a member handed out and has
// not finished (acknowledged): "sb-attempts:<offset>:<n>,<offset>:<n>,..."
// in offset order, n being the deliveries of the message at offset.
//
// Receive counts the batch it hands out (n is one more than the count
// recorded for that offset, or 1) and records the counts in one offset
// commit (the position does not move) before it returns the batch: one
// commit per Receive batch, not per message. A member that crashes while
// handling its messages leaves their counts behind, so the next member
// reports each of them with n+1, and package messaging dead-letters a
// message that keeps crashing its consumers after MaxAttempts deliveries.
// Each ordinary commit (acknowledged positions) writes the counts of the
// messages still unfinished, so a finished message's count goes with it.
// A message fetched again after a Nack of this member keeps its count.
//
// Crash suspects: a message fetched with a count left by an earlier member
// (its handler may have crashed the process) is handed out alone: only
// once every message of its partition handed out before it is settled,
// and nothing after it until it is settled. So a message that crashes its
// consumers is counted by itself, and messages next to it on the
// partition are not redelivered (and counted) with each of its crashes
// more than once more.
//
// Bound: the metadata holds at most maxAttemptsMeta (4000) bytes, below
// Kafka's default offset.metadata.max.bytes (4096): with 19-digit offsets
// about 180 counts, more with smaller offsets. Past it, the counts of the
// newest unfinished offsets are not recorded: after a crash those
// messages are reported as first deliveries again (as with a commit that
// fails, which Receive retries a few times and then hands the batch out
// uncounted).

const attemptsPrefix = "sb-attempts:"

// maxAttemptsMeta bounds the commit metadata in bytes (Kafka's default
// offset.metadata.max.bytes is 4096).
const maxAttemptsMeta = 4000

// attemptCount is the recorded delivery count of one unfinished message.
type attemptCount struct {
	n    int
	mine bool // counted by this member in this generation
}

// formatAttempts returns the commit metadata recording the counts of the
// offsets at or after pos, in offset order, within maxAttemptsMeta bytes.
func formatAttempts(counts map[int64]*attemptCount, pos int64) string {
	offs := make([]int64, 0, len(counts))
	for o := range counts {
		if o >= pos {
			offs = append(offs, o)
		}
	}
	if len(offs) == 0 {
		return ""
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	b := []byte(attemptsPrefix)
	for i, o := range offs {
		l := len(b)
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, o, 10)
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(counts[o].n), 10)
		if len(b) > maxAttemptsMeta {
			b = b[:l]
			break
		}
	}
	return string(b)
}

// parseAttempts reads commit metadata (also the single
// "sb-attempts:<offset>:<n>" of earlier versions); it returns nil when it
// holds no count.
func parseAttempts(meta string) map[int64]int {
	rest, found := strings.CutPrefix(meta, attemptsPrefix)
	if !found {
		return nil
	}
	var out map[int64]int
	for _, pair := range strings.Split(rest, ",") {
		o, c, found := strings.Cut(pair, ":")
		if !found {
			continue
		}
		offset, err1 := strconv.ParseInt(o, 10, 64)
		n, err2 := strconv.Atoi(c)
		if err1 != nil || err2 != nil || n < 0 || offset < 0 {
			continue
		}
		if out == nil {
			out = make(map[int64]int)
		}
		out[offset] = n
	}
	return out
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
		for off, n := range parseAttempts(fp.Metadata) {
			if off >= fp.CommittedOffset && n > 0 {
				p.counts[off] = &attemptCount{n: n}
			}
		}
	}
}

// countBatch sets the delivery count of each delivery of a batch about to
// be handed out and records the counts durably, in one offset commit per
// generation, before it returns. Counts already recorded by this member
// (a message fetched again after a Nack) are kept.
func (s *subscription) countBatch(batch []delivery) {
	type rec struct {
		g       *generation
		offsets map[int]kafkago.OffsetCommit
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	var recs []*rec
	for i := range batch {
		d := &batch[i]
		p, off := d.p, d.msg.Offset
		c := p.counts[off]
		switch {
		case c != nil && c.mine:
			d.count = c.n
			continue
		case c != nil:
			c.n, c.mine = c.n+1, true
		default:
			c = &attemptCount{n: 1, mine: true}
			p.counts[off] = c
		}
		d.count = c.n
		var r *rec
		for _, x := range recs {
			if x.g == p.g {
				r = x
			}
		}
		if r == nil {
			r = &rec{g: p.g, offsets: map[int]kafkago.OffsetCommit{}}
			recs = append(recs, r)
		}
		r.offsets[p.id] = kafkago.OffsetCommit{Partition: p.id}
	}
	for _, r := range recs {
		for id := range r.offsets {
			p := r.g.parts[id]
			pos := p.position()
			r.offsets[id] = kafkago.OffsetCommit{Partition: id, Offset: pos, Metadata: formatAttempts(p.counts, pos)}
		}
	}
	s.mu.Unlock()
	for _, r := range recs {
		commits := make([]kafkago.OffsetCommit, 0, len(r.offsets))
		for _, oc := range r.offsets {
			commits = append(commits, oc)
		}
		if err := s.commitWithMetadata(s.ctx, r.g, commits, 4); err != nil {
			// The generation is ending, or the coordinator refuses: hand
			// the messages out with the counts they have; they are not
			// recorded.
			s.log.Debug("kafka: cannot record delivery counts", "err", err)
			continue
		}
		s.mu.Lock()
		for _, oc := range commits {
			if p := r.g.parts[oc.Partition]; oc.Offset > p.committed {
				p.committed = oc.Offset
			}
		}
		s.mu.Unlock()
	}
}

// commitWithMetadata commits offsets with their metadata for generation
// g, trying again up to retries times (50ms, 100ms, ... apart) while ctx
// lasts.
func (s *subscription) commitWithMetadata(ctx context.Context, g *generation, commits []kafkago.OffsetCommit, retries int) error {
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := s.t.client.OffsetCommit(cctx, &kafkago.OffsetCommitRequest{
			GroupID:      s.group,
			GenerationID: int(g.gen.ID),
			MemberID:     g.gen.MemberID,
			Topics:       map[string][]kafkago.OffsetCommit{s.topic: commits},
		})
		cancel()
		if err == nil {
			for _, pr := range resp.Topics[s.topic] {
				if pr.Error != nil {
					err = pr.Error
				}
			}
		}
		if err == nil || ctx.Err() != nil || attempt >= retries {
			return err
		}
		wait.Sleep(ctx, nil, time.Duration(attempt+1)*50*time.Millisecond)
	}
}
