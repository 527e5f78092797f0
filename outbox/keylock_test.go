package outbox_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
)

// TestKeyLockSerializesWriters: with WithKeyLock, a transaction writing a
// key another open transaction wrote waits for it to end, so the key's
// sequence order is its commit order.
func TestKeyLockSerializesWriters(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := memClient(t)
		ob := newOutbox(t, db, c, outbox.WithKeyLock(true))
		got := newReceived()
		if _, err := c.Subscribe(ctx, "orders", "billing", got.handler); err != nil {
			t.Fatal(err)
		}
		tx1, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx1.Rollback()
		if err := ob.Publish(ctx, tx1, "orders", &messaging.Message{ID: "first", Key: "k", Body: []byte("k/0")}); err != nil {
			t.Fatal(err)
		}
		second := make(chan error, 1)
		go func() {
			tx2, err := db.BeginTx(ctx, nil)
			if err != nil {
				second <- err
				return
			}
			if err := ob.Publish(ctx, tx2, "orders", &messaging.Message{ID: "second", Key: "k", Body: []byte("k/1")}); err != nil {
				tx2.Rollback()
				second <- err
				return
			}
			second <- tx2.Commit()
		}()
		// Wait until the database reports the second writer waiting for
		// the key's lock.
		q := "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%" + ob.Table() + "_keys%'"
		if db.Dialect == outbox.MySQL {
			// MariaDB's INNODB_TRX does not list this wait: look for the
			// statement still running after 200ms, as only a lock makes it.
			q = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE TIME_MS >= 200 AND INFO LIKE 'INSERT INTO " + ob.Table() + "_keys%'"
		}
		for {
			var n int
			if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			select {
			case err := <-second:
				t.Fatalf("the second writer did not wait for the first: %v", err)
			case <-ctx.Done():
				t.Fatal("the second writer never waited for the key")
			case <-time.After(10 * time.Millisecond):
			}
		}
		if err := tx1.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := <-second; err != nil {
			t.Fatal(err)
		}
		startRelays(t, ctx, ob)
		got.waitIDs(t, ctx, []string{"first", "second"})
		checkOrder(t, got.snapshot())
		inTx(t, ctx, db.DB, func(tx *sql.Tx) error { // no key: no lock statement
			return ob.Publish(ctx, tx, "orders", &messaging.Message{ID: "unkeyed"})
		})
		got.waitIDs(t, ctx, []string{"unkeyed"})
	})
}
