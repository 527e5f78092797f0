package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/switchboard-go/switchboard/transport"
)

// Fault tests run against clusters of their own (kfake), whose requests
// they disturb with kfake's control hooks, and which they restart. Every
// message whose Send succeeded must be consumed at least once.

// ledger records what was acknowledged by the broker and what was consumed.
type ledger struct {
	mu    sync.Mutex
	acked map[string]bool
	got   map[string]int
	cond  chan struct{}

	slowest time.Duration // slowest Send (written by the producer only)
}

func newLedger() *ledger {
	return &ledger{acked: map[string]bool{}, got: map[string]int{}, cond: make(chan struct{}, 1)}
}

func (l *ledger) poke() {
	select {
	case l.cond <- struct{}{}:
	default:
	}
}

func (l *ledger) missing() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.acked {
		if l.got[id] == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (l *ledger) dups() (n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.got {
		if c > 1 {
			n += c - 1
		}
	}
	return n
}

// produce sends n messages, keyed over 7 keys, in batches of 3, each batch
// resent until the broker accepts it; acknowledged IDs go to l.
func produce(ctx context.Context, tr transport.Transport, to transport.Address, n int, l *ledger, pace time.Duration) (failures int) {
	for i := 0; i < n; i += 3 {
		var batch []*transport.Message
		for j := i; j < i+3 && j < n; j++ {
			batch = append(batch, &transport.Message{ID: fmt.Sprintf("m%05d", j), Key: fmt.Sprint("k", j%7), Body: []byte("x"), Time: time.Now()})
		}
		for {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st := time.Now()
			err := tr.Send(sctx, to, batch)
			if d := time.Since(st); d > l.slowest {
				l.slowest = d
			}
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
		l.mu.Lock()
		for _, m := range batch {
			l.acked[m.ID] = true
		}
		l.mu.Unlock()
		if pace > 0 {
			time.Sleep(pace)
		}
	}
	return failures
}

// consume receives and acks until ctx ends or the subscription closes.
func consume(ctx context.Context, t *testing.T, s transport.Subscription, l *ledger) {
	for {
		ms, err := s.Receive(ctx, 20)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, transport.ErrClosed) {
				t.Errorf("receive: %v", err)
			}
			return
		}
		ids := make([]any, len(ms))
		l.mu.Lock()
		for i, m := range ms {
			l.got[m.ID]++
			ids[i] = m.AckID
		}
		l.mu.Unlock()
		l.poke()
		_ = s.Ack(ctx, ids) // failures mean redelivery, which the ledger tolerates
	}
}

// await waits until every acknowledged message was consumed.
func (l *ledger) await(t *testing.T, produced <-chan struct{}, d time.Duration) {
	t.Helper()
	<-produced
	deadline := time.After(d)
	for {
		miss := l.missing()
		if len(miss) == 0 {
			return
		}
		select {
		case <-l.cond:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%d acknowledged messages never consumed (LOST), first: %v", len(miss), miss[:min(10, len(miss))])
		}
	}
}

func faultCluster(t *testing.T, opts ...kfake.Opt) (*kfake.Cluster, []string) {
	t.Helper()
	if envBrokers() != nil {
		t.Log("fault tests use in-process kfake clusters even when SWITCHBOARD_KAFKA_BROKERS is set")
	}
	c, err := startKfake(opts...)
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c, c.ListenAddrs()
}

func produceErrorResponse(req *kmsg.ProduceRequest, code int16) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	resp.SetVersion(req.Version)
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// TestFaultProduceErrors: a third of produce requests fail with a
// retriable error, one in ten drops its connection.
func TestFaultProduceErrors(t *testing.T) {
	c, brokers := faultCluster(t)
	var n atomic.Int64
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		switch k := n.Add(1); {
		case k%10 == 0:
			return nil, errors.New("fault: drop connection"), true
		case k%3 == 0:
			return produceErrorResponse(kr.(*kmsg.ProduceRequest), kerr.NotLeaderForPartition.Code), nil, true
		}
		return nil, nil, false
	})
	runFault(t, brokers, 150, nil)
}

// TestFaultFetchCommitDrops: fetch and offset-commit connections drop
// regularly while two members of a group consume.
func TestFaultFetchCommitDrops(t *testing.T) {
	c, brokers := faultCluster(t)
	var nf, nc atomic.Int64
	c.ControlKey(int16(kmsg.Fetch), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if nf.Add(1)%7 == 0 {
			return nil, errors.New("fault: drop fetch connection"), true
		}
		return nil, nil, false
	})
	c.ControlKey(int16(kmsg.OffsetCommit), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if nc.Add(1)%3 == 0 {
			return nil, errors.New("fault: drop commit connection"), true
		}
		return nil, nil, false
	})
	runFault(t, brokers, 300, nil)
}

// TestFaultConsumerDies: a member holding unacknowledged messages dies
// without leaving the group (its LeaveGroup never arrives); after its
// session times out, the other member gets its partitions and the
// messages.
func TestFaultConsumerDies(t *testing.T) {
	c, brokers := faultCluster(t)
	tr := openAt(t, brokers)
	trA := openAt(t, brokers)
	trB := openAt(t, brokers)
	q := transport.Queue(unique("dies"))
	if err := tr.Declare(ctxT(t, 10*time.Second), q); err != nil {
		t.Fatal(err)
	}
	a := subscribe(t, trA, q, "")
	l := newLedger()
	produced := make(chan struct{})
	go func() { defer close(produced); produce(context.Background(), tr, q, 60, l, 0) }()
	<-produced
	// A takes deliveries and never acks them.
	held := recv(t, a, 10, false)
	t.Logf("member A holds %d unacknowledged messages", len(held))
	var left atomic.Int64
	var dying atomic.Bool
	dying.Store(true)
	die := func(count bool) func(kmsg.Request) (kmsg.Response, error, bool) {
		return func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			if !dying.Load() {
				return nil, nil, false
			}
			if count {
				left.Add(1)
			}
			return nil, errors.New("fault: member died"), true
		}
	}
	c.ControlKey(int16(kmsg.LeaveGroup), die(true))
	c.ControlKey(int16(kmsg.OffsetCommit), die(false))
	_ = a.Close() // its leave and commits never reach the cluster
	dying.Store(false)
	t.Logf("LeaveGroup requests dropped: %d", left.Load())
	b := subscribe(t, trB, q, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); consume(ctx, t, b, l) }()
	l.await(t, produced, 60*time.Second)
	cancel()
	<-done
	t.Logf("consumer died: %d published, %d lost, %d duplicates", len(l.acked), len(l.missing()), l.dups())
}

// TestFaultClusterRestart: the cluster goes away and comes back on the
// same port with its data directory while producing and consuming.
func TestFaultClusterRestart(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	c1, err := startKfake(kfake.Ports(port), kfake.DataDir(dir))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	brokers := c1.ListenAddrs()
	var c2 *kfake.Cluster
	var mu sync.Mutex
	c1closed := false
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if !c1closed {
			c1.Close()
		}
		if c2 != nil {
			c2.Close()
		}
	})
	runFault(t, brokers, 400, func(progress func() int) {
		for progress() < 100 {
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		c1.Close()
		c1closed = true
		mu.Unlock()
		t.Log("cluster stopped")
		time.Sleep(1500 * time.Millisecond)
		c, err := startKfake(kfake.Ports(port), kfake.DataDir(dir))
		if err != nil {
			t.Errorf("restart kfake: %v", err)
			return
		}
		mu.Lock()
		c2 = c
		mu.Unlock()
		t.Log("cluster restarted")
	})
}

// runFault publishes n messages to a queue and a topic group consumed by
// two members each, runs disturb (if any) meanwhile, and checks that every
// acknowledged message was consumed.
func runFault(t *testing.T, brokers []string, n int, disturb func(progress func() int)) {
	prod := openAt(t, brokers)
	cons1 := openAt(t, brokers)
	cons2 := openAt(t, brokers)
	for _, to := range []transport.Address{transport.Queue(unique("fq")), transport.Topic(unique("ft"))} {
		t.Run(to.Kind.String(), func(t *testing.T) {
			group := ""
			if to.Kind == transport.KindTopic {
				group = "g"
			} else if err := prod.Declare(ctxT(t, 20*time.Second), to); err != nil {
				t.Fatal(err)
			}
			s1 := subscribe(t, cons1, to, group)
			s2 := subscribe(t, cons2, to, group)
			l := newLedger()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var wg sync.WaitGroup
			for _, s := range []transport.Subscription{s1, s2} {
				wg.Add(1)
				go func() { defer wg.Done(); consume(ctx, t, s, l) }()
			}
			produced := make(chan struct{})
			var failures int
			go func() {
				defer close(produced)
				pctx, pcancel := context.WithTimeout(ctx, 90*time.Second)
				defer pcancel()
				failures = produce(pctx, prod, to, n, l, 2*time.Millisecond)
			}()
			if disturb != nil {
				disturb(func() int {
					l.mu.Lock()
					defer l.mu.Unlock()
					return len(l.acked)
				})
				disturb = nil // once, on the first destination
			}
			l.await(t, produced, 90*time.Second)
			cancel()
			wg.Wait()
			l.mu.Lock()
			acked := len(l.acked)
			l.mu.Unlock()
			if acked != n {
				t.Errorf("only %d of %d messages were acknowledged by the broker", acked, n)
			}
			t.Logf("%s: %d published (%d failed sends retried, slowest send %v), 0 lost, %d duplicates",
				to.Kind, acked, failures, l.slowest.Round(time.Millisecond), l.dups())
		})
	}
}
