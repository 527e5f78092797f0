package sqldedup_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/dedup/sqldedup"
	"github.com/switchboard-go/switchboard/dedup/storetest"
	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(consumerChild())
	}
	goleak.VerifyTestMain(m)
}

// newStore returns a store on a table of its own, dropped at the end.
func newStore(t *testing.T, db *outboxtest.DB) *sqldedup.Store {
	t.Helper()
	s, err := sqldedup.New(db.DB, sqldedup.WithTable(outboxtest.Table(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Drop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		storetest.Run(t, func(t *testing.T) dedup.Store { return newStore(t, db) })
	})
}

func TestConcurrentConsumers(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		storetest.ConcurrentConsumers(t, newStore(t, db), "")
	})
}

func TestExpiryAndPurge(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx := context.Background()
		s := newStore(t, db)
		if st, err := s.Begin(ctx, "k", "a", time.Millisecond); err != nil || st != dedup.Claimed {
			t.Fatalf("Begin %v %v", st, err)
		}
		if err := s.Complete(ctx, "done", time.Hour); err != nil {
			t.Fatal(err)
		}
		// Make the claim lapse without waiting for it.
		if _, err := db.ExecContext(ctx, "UPDATE "+s.Table()+" SET expires_at = 0 WHERE done = FALSE"); err != nil {
			t.Fatal(err)
		}
		if st, err := s.Begin(ctx, "k", "b", time.Minute); err != nil || st != dedup.Claimed {
			t.Fatalf("after the lease lapsed: %v %v; want claimed", st, err)
		}
		if _, err := db.ExecContext(ctx, "UPDATE "+s.Table()+" SET expires_at = 0 WHERE done = FALSE"); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Purge(ctx); err != nil || n != 1 {
			t.Fatalf("Purge %d %v; want 1 row", n, err)
		}
		if st, _ := s.Begin(ctx, "done", "c", time.Minute); st != dedup.Done {
			t.Fatalf("a retained key after Purge: %v", st)
		}
		long := string(make([]byte, 1000))
		if st, err := s.Begin(ctx, long, "a", time.Minute); err != nil || st != dedup.Claimed {
			t.Fatalf("long key: %v %v", st, err)
		}
	})
}

func TestBadInput(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		if _, err := sqldedup.New(db.DB, sqldedup.WithTable("no-dashes")); !errors.Is(err, messaging.ErrInvalid) {
			t.Fatalf("bad table name: %v", err)
		}
		if _, err := sqldedup.New(nil); !errors.Is(err, messaging.ErrInvalid) {
			t.Fatalf("nil db: %v", err)
		}
		s, err := sqldedup.New(db.DB, sqldedup.WithTable("sbtest_no_such_inbox"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Begin(context.Background(), "k", "a", time.Minute); err == nil {
			t.Fatal("Begin on a missing table succeeded")
		}
	})
}

// TestEffectsCommitWithRecord: the handler's effect and the record that
// the message was handled commit together. An attempt that fails after
// writing its effect (a crash between effect and record) rolls both back:
// the redelivery handles the message again and the effect exists once. An
// attempt whose acknowledgement is lost after the commit is redelivered
// and acknowledged without calling the handler.
func TestEffectsCommitWithRecord(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s := newStore(t, db)
		effects := outboxtest.Table(t)
		if _, err := db.ExecContext(ctx, "CREATE TABLE "+effects+" (msg_id VARCHAR(64) NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.ExecContext(context.Background(), "DROP TABLE "+effects) })

		b, err := inmem.NewBroker()
		if err != nil {
			t.Fatal(err)
		}
		c, err := messaging.New(b.Transport(), messaging.WithSubscribeDefaults(messaging.WithRetry(messaging.RetryPolicy{
			MaxAttempts: 5, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Multiplier: 2})))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		mw, err := s.Transactional(dedup.WithNamespace("billing"))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		calls := map[string]int{}
		acked := make(chan string, 10)
		// loseAck fails the first attempt of "ack-lost" after it
		// committed: what a crash between commit and acknowledgement does.
		loseAck := func(next messaging.Handler) messaging.Handler {
			return func(ctx context.Context, m *messaging.Message) error {
				err := next(ctx, m)
				if err == nil && m.ID == "ack-lost" && m.Attempt == 1 {
					return errors.New("acknowledgement lost")
				}
				if err == nil {
					acked <- m.ID
				}
				return err
			}
		}
		h := func(ctx context.Context, m *messaging.Message) error {
			mu.Lock()
			calls[m.ID]++
			mu.Unlock()
			tx := sqldedup.Tx(ctx)
			if tx == nil {
				return errors.New("no transaction")
			}
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+effects+" (msg_id) VALUES ("+db.Dialect.P(1)+")", m.ID); err != nil {
				return err
			}
			if m.ID == "crash-before-record" && m.Attempt == 1 {
				return errors.New("crashed after the effect, before the record")
			}
			return nil
		}
		if _, err := c.Listen(ctx, "billing", h, messaging.WithMiddleware(loseAck, mw)); err != nil {
			t.Fatal(err)
		}
		ids := []string{"crash-before-record", "ack-lost", "plain"}
		for _, id := range ids {
			if err := c.Notify(ctx, "billing", &messaging.Message{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		for range ids {
			select {
			case <-acked:
			case <-ctx.Done():
				t.Fatal("timed out")
			}
		}
		for _, id := range ids {
			var n int
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+effects+" WHERE msg_id = "+db.Dialect.P(1), id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("%s: effect happened %d times; want once", id, n)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if calls["crash-before-record"] != 2 || calls["ack-lost"] != 1 || calls["plain"] != 1 {
			t.Fatalf("handler calls %v; want 2 for the crashed attempt, 1 for the others", calls)
		}
	})
}

// TestTxConcurrentDuplicates: two consumers handle the same message at
// once in transactional mode; one handles it, the other waits for its
// transaction and then finds it handled.
func TestTxConcurrentDuplicates(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s := newStore(t, db)
		mw, err := s.Transactional()
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		calls := 0
		h := mw(func(ctx context.Context, m *messaging.Message) error {
			mu.Lock()
			calls++
			mu.Unlock()
			return nil
		})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := h(ctx, &messaging.Message{ID: "m", ReceivedFrom: "q"}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if calls != 1 {
			t.Fatalf("handler ran %d times; want 1", calls)
		}
		var tx *sql.Tx = sqldedup.Tx(ctx)
		if tx != nil {
			t.Fatal("Tx outside a handler")
		}
	})
}
