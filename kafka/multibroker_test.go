package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchboard-go/switchboard/transport"
)

// orderLedger checks per-key order on top of ledger: a message seen for
// the first time must come after every message of its key seen before
// (redeliveries after a rebalance may repeat older messages: those are
// duplicates, counted, not order violations).
type orderLedger struct {
	*ledger
	maxSeq     map[string]int
	violations []string
	firstRecv  time.Time // first delivery of a message published after the broker loss
	lossAt     time.Time
	lossSeq    int // messages acknowledged before the loss
}

func (o *orderLedger) consume(ctx context.Context, t *testing.T, s transport.Subscription) {
	for {
		ms, err := s.Receive(ctx, 20)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, transport.ErrClosed) {
				t.Errorf("receive: %v", err)
			}
			return
		}
		now := time.Now()
		ids := make([]any, len(ms))
		o.mu.Lock()
		for i, m := range ms {
			seq, _ := strconv.Atoi(strings.TrimPrefix(m.ID, "m"))
			if o.got[m.ID] == 0 {
				if prev, ok := o.maxSeq[m.Key]; ok && seq < prev {
					o.violations = append(o.violations, fmt.Sprintf("key %s: %s after m%05d", m.Key, m.ID, prev))
				}
				o.maxSeq[m.Key] = max(o.maxSeq[m.Key], seq)
			}
			if !o.lossAt.IsZero() && o.firstRecv.IsZero() && seq >= o.lossSeq {
				o.firstRecv = now
			}
			o.got[m.ID]++
			ids[i] = m.AckID
		}
		o.mu.Unlock()
		o.poke()
		_ = s.Ack(ctx, ids)
	}
}

// TestMultiBrokerLeaderChangesAndBrokerLoss runs a three-broker kfake
// cluster, bootstraps from all three, and while publishing (acks=all) and
// consuming with two group members: moves every partition's leadership,
// removes the first bootstrap broker (which leads partitions and may
// coordinate the group), moves the group coordinators, shuffles the
// leaders again, and brings the removed broker back on its port. Every acknowledged message must be consumed, per-key order
// must hold, and duplicates and recovery times are reported.
func TestMultiBrokerLeaderChangesAndBrokerLoss(t *testing.T) {
	c, brokers := faultCluster(t, kfake.NumBrokers(3))
	if len(brokers) != 3 {
		t.Fatalf("kfake started %d brokers, want 3", len(brokers))
	}
	prod := openAt(t, brokers)
	cons1 := openAt(t, brokers)
	cons2 := openAt(t, brokers)
	to := transport.Topic(unique("mb"))
	kt := "topic." + to.Name
	s1 := subscribe(t, cons1, to, "g")
	s2 := subscribe(t, cons2, to, "g")
	l := &orderLedger{ledger: newLedger(), maxSeq: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range []transport.Subscription{s1, s2} {
		wg.Add(1)
		go func() { defer wg.Done(); l.consume(ctx, t, s) }()
	}

	const n = 3000
	var firstSend time.Time
	var lossAt time.Time
	var lossMu sync.Mutex
	produced := make(chan struct{})
	var failures int
	go func() {
		defer close(produced)
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Minute)
		defer pcancel()
		// produce in slices, noting the first acknowledged send after
		// the broker loss.
		for i := 0; i < n; i += 50 {
			failures += produceRange(pctx, prod, to, i, min(i+50, n), l.ledger, func() {
				lossMu.Lock()
				if !lossAt.IsZero() && firstSend.IsZero() {
					firstSend = time.Now()
				}
				lossMu.Unlock()
			})
			if pctx.Err() != nil {
				return
			}
			time.Sleep(2 * time.Millisecond) // spread the messages over the disturbances
		}
	}()
	progress := func() int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.acked)
	}
	waitFor := func(k int) {
		for progress() < k {
			select {
			case <-produced:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	start := time.Now()
	waitFor(400)
	moved := 0
	for p := int32(0); p < 3; p++ {
		lead := c.LeaderFor(kt, p)
		next := (lead + 1) % 3
		if err := c.MoveTopicPartition(kt, p, next); err != nil {
			t.Fatalf("move partition %d: %v", p, err)
		}
		moved++
	}
	t.Logf("at %d acknowledged: moved the leadership of %d partitions", progress(), moved)

	waitFor(1000)
	lossMu.Lock()
	lossAt = time.Now()
	lossMu.Unlock()
	l.mu.Lock()
	l.lossAt, l.lossSeq = lossAt, len(l.acked)
	l.mu.Unlock()
	// Node 0 is the first bootstrap broker.
	if err := c.RemoveNode(0); err != nil {
		t.Fatalf("remove broker 0: %v", err)
	}
	t.Logf("at %d acknowledged: removed broker 0 (%s), the first bootstrap broker; leaders now %d, %d, %d",
		progress(), brokers[0], c.LeaderFor(kt, 0), c.LeaderFor(kt, 1), c.LeaderFor(kt, 2))

	waitFor(1800)
	c.RehashCoordinators()
	t.Logf("at %d acknowledged: moved the group coordinators", progress())

	waitFor(2200)
	c.ShufflePartitionLeaders()
	t.Logf("at %d acknowledged: shuffled the partition leaders", progress())

	waitFor(2600)
	_, portStr, _ := net.SplitHostPort(brokers[0])
	port, _ := strconv.Atoi(portStr)
	if _, _, err := c.AddNode(0, port); err != nil {
		t.Fatalf("bring broker 0 back on port %d: %v", port, err)
	}
	t.Logf("at %d acknowledged: broker 0 is back on %s; leaders now %d, %d, %d",
		progress(), brokers[0], c.LeaderFor(kt, 0), c.LeaderFor(kt, 1), c.LeaderFor(kt, 2))

	<-produced
	t.Logf("all %d acknowledged after %v", progress(), time.Since(start).Round(time.Millisecond))
	l.await(t, produced, 2*time.Minute)
	t.Logf("all consumed after %v", time.Since(start).Round(time.Millisecond))
	cancel()
	wg.Wait()
	if acked := progress(); acked != n {
		t.Fatalf("only %d of %d messages were acknowledged", acked, n)
	}
	l.mu.Lock()
	viol, firstRecv := l.violations, l.firstRecv
	l.mu.Unlock()
	if len(viol) > 0 {
		t.Errorf("%d per-key order violations, first: %v", len(viol), viol[:min(5, len(viol))])
	}
	if err := prod.(transport.Pinger).Ping(ctxT(t, 10*time.Second)); err != nil {
		t.Errorf("ping with broker 0 gone: %v", err)
	}
	t.Logf("RESULT kafka 3 brokers, leader moves + broker loss + coordinator moves + broker back: %d published (acks=all), 0 lost, %d duplicates, %d failed sends retried, per-key order kept",
		n, l.dups(), failures)
	lossMu.Lock()
	t.Logf("RESULT recovery (broker removed -> first acknowledged publish): %v", firstSend.Sub(lossAt).Round(time.Millisecond))
	lossMu.Unlock()
	t.Logf("RESULT recovery (broker removed -> first delivery of a message published after it): %v", firstRecv.Sub(lossAt).Round(time.Millisecond))
}

// produceRange sends messages from..to-1 in batches of 10, each resent
// until acknowledged, calling acked after each acknowledged batch, and
// returns the failed attempts.
func produceRange(ctx context.Context, tr transport.Transport, to transport.Address, from, until int, l *ledger, acked func()) (failures int) {
	for i := from; i < until; i += 10 {
		var batch []*transport.Message
		for j := i; j < i+10 && j < until; j++ {
			batch = append(batch, &transport.Message{ID: fmt.Sprintf("m%05d", j), Key: fmt.Sprint("k", j%7), Body: []byte("x"), Time: time.Now()})
		}
		for {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := tr.Send(sctx, to, batch)
			cancel()
			if err == nil {
				break
			}
			failures++
			if ctx.Err() != nil {
				return failures
			}
			time.Sleep(50 * time.Millisecond)
		}
		acked()
		l.mu.Lock()
		for _, m := range batch {
			l.acked[m.ID] = true
		}
		l.mu.Unlock()
	}
	return failures
}
