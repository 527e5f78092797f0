package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
)

// newOutbox returns an outbox on a table of its own, migrated, dropped
// when the test ends.
func newOutbox(t *testing.T, db *outboxtest.DB, c *messaging.Client, opts ...outbox.Option) *outbox.Outbox {
	t.Helper()
	opts = append([]outbox.Option{outbox.WithTable(outboxtest.Table(t)), outbox.WithPollInterval(50 * time.Millisecond),
		outbox.WithBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)
	ob, err := outbox.New(db.DB, c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ob.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A test that kills sessions (TestRelayConnectionsKilled) can
		// leave a dead connection in the pool: try again on another.
		var err error
		for range 3 {
			if err = ob.Drop(context.Background()); err == nil {
				return
			}
		}
		t.Error(err)
	})
	return ob
}

// sibling returns another outbox on ob's table, with client c and opts.
func sibling(t *testing.T, db *outboxtest.DB, ob *outbox.Outbox, c *messaging.Client, opts ...outbox.Option) *outbox.Outbox {
	t.Helper()
	opts = append([]outbox.Option{outbox.WithTable(ob.Table()), outbox.WithPollInterval(50 * time.Millisecond),
		outbox.WithBackoff(10*time.Millisecond, 200*time.Millisecond)}, opts...)
	o2, err := outbox.New(db.DB, c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return o2
}

// inTx runs f in a transaction and commits it.
func inTx(t testing.TB, ctx context.Context, db *sql.DB, f func(tx *sql.Tx) error) {
	t.Helper()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// startRelays runs n relays of ob's table (each its own Outbox) until the
// test ends.
func startRelays(t *testing.T, ctx context.Context, obs ...*outbox.Outbox) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, ob := range obs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ob.Relay(ctx); err != nil {
				t.Errorf("relay: %v", err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// received collects what a subscription received.
type received struct {
	mu   sync.Mutex
	msgs []*messaging.Message
	ids  map[string]int
	more chan struct{}
}

func newReceived() *received {
	return &received{ids: map[string]int{}, more: make(chan struct{}, 1)}
}

func (r *received) handler(ctx context.Context, m *messaging.Message) error {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.ids[m.ID]++
	r.mu.Unlock()
	select {
	case r.more <- struct{}{}:
	default:
	}
	return nil
}

// waitIDs waits until every id was received at least once.
func (r *received) waitIDs(t *testing.T, ctx context.Context, ids []string) {
	t.Helper()
	for {
		r.mu.Lock()
		missing := 0
		for _, id := range ids {
			if r.ids[id] == 0 {
				missing++
			}
		}
		r.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-r.more:
		case <-ctx.Done():
			t.Fatalf("%d of %d messages never arrived", missing, len(ids))
		}
	}
}

func (r *received) snapshot() []*messaging.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*messaging.Message(nil), r.msgs...)
}

// checkOrder checks that each key's messages (bodies "key/n") arrived in
// order of n, allowing a contiguous run to be received again (the
// duplicates of a crashed relay), and returns the number of duplicates.
func checkOrder(t *testing.T, msgs []*messaging.Message) (dups int) {
	t.Helper()
	next := map[string]int{} // key -> highest n seen + 1
	for _, m := range msgs {
		key, nstr, _ := strings.Cut(string(m.Body), "/")
		n, err := strconv.Atoi(nstr)
		if err != nil || key != m.Key {
			t.Fatalf("unexpected message %q key %q", m.Body, m.Key)
		}
		switch {
		case n == next[key]:
			next[key]++
		case n < next[key]:
			dups++
		default:
			t.Fatalf("key %s: got %d after %d: a message was skipped or reordered", key, n, next[key]-1)
		}
	}
	return dups
}

// writeKeyed writes n messages over keys keys ("k0".."k{keys-1}", bodies
// "key/i") to topic, in transactions of perTx messages, and returns their
// IDs.
func writeKeyed(t *testing.T, ctx context.Context, db *sql.DB, ob *outbox.Outbox, topic string, n, keys, perTx int) []string {
	t.Helper()
	var ids []string
	count := map[int]int{}
	for start := 0; start < n; start += perTx {
		var msgs []*messaging.Message
		for i := start; i < min(start+perTx, n); i++ {
			k := i % keys
			id := fmt.Sprintf("m-%d", i)
			msgs = append(msgs, &messaging.Message{ID: id, Key: "k" + strconv.Itoa(k), Body: []byte(fmt.Sprintf("k%d/%d", k, count[k]))})
			count[k]++
			ids = append(ids, id)
		}
		inTx(t, ctx, db, func(tx *sql.Tx) error { return ob.Publish(ctx, tx, topic, msgs...) })
	}
	return ids
}

func waitEmpty(t *testing.T, ctx context.Context, ob *outbox.Outbox) {
	t.Helper()
	for {
		n, _, err := ob.Backlog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d rows still in the outbox", n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
