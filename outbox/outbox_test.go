package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
	"github.com/switchboard-go/switchboard/transport"
)

func memClient(t *testing.T, opts ...inmem.Option) *messaging.Client {
	t.Helper()
	b, err := inmem.NewBroker(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return clientOn(t, b)
}

// clientOn returns a client of broker b, closed when the test ends.
func clientOn(t *testing.T, b *inmem.Broker, opts ...messaging.ClientOption) *messaging.Client {
	t.Helper()
	c, err := messaging.New(b.Transport(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// countSends counts the messages a client sends.
func countSends(n *atomic.Int64) messaging.SendMiddleware {
	return func(next messaging.SendFunc) messaging.SendFunc {
		return func(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
			err := next(ctx, to, msgs)
			if err == nil {
				n.Add(int64(len(msgs)))
			}
			return err
		}
	}
}

// TestRollbackPublishesNothing: a rolled-back transaction's messages are
// never sent; a committed one's are, once.
func TestRollbackPublishesNothing(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := memClient(t)
		ob := newOutbox(t, db, c)
		got := newReceived()
		if _, err := c.Subscribe(ctx, "orders", "billing", got.handler); err != nil {
			t.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ob.Publish(ctx, tx, "orders", &messaging.Message{ID: "rolled-back", Key: "o-1"}); err != nil {
			t.Fatal(err)
		}
		if err := ob.Notify(ctx, tx, "mailer", &messaging.Message{ID: "rolled-back-mail"}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		// The barrier: committed after the rollback, relayed in order.
		inTx(t, ctx, db.DB, func(tx *sql.Tx) error {
			return ob.Publish(ctx, tx, "orders", &messaging.Message{ID: "committed", Key: "o-1"})
		})
		startRelays(t, ctx, ob)
		got.waitIDs(t, ctx, []string{"committed"})
		waitEmpty(t, ctx, ob)
		for _, m := range got.snapshot() {
			if m.ID != "committed" {
				t.Fatalf("received %s, written by a rolled-back transaction", m.ID)
			}
		}
		if dead, err := ob.Dead(ctx, 10); err != nil || len(dead) != 0 {
			t.Fatalf("dead rows %v, %v", dead, err)
		}
	})
}

// TestBadInput: typed errors before commit, and nothing written.
func TestBadInput(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := memClient(t, inmem.WithMaxMessageSize(1000))
		ob := newOutbox(t, db, c)
		ok := &messaging.Message{Body: []byte("x")}
		if err := ob.Publish(ctx, nil, "orders", ok); !errors.Is(err, sql.ErrTxDone) {
			t.Errorf("nil tx: %v; want sql.ErrTxDone", err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		tx.Commit()
		if err := ob.Publish(ctx, tx, "orders", ok); !errors.Is(err, sql.ErrTxDone) {
			t.Errorf("committed tx: %v; want sql.ErrTxDone", err)
		}
		for name, tc := range map[string]struct {
			topic string
			m     *messaging.Message
			want  error
		}{
			"too large":       {"orders", &messaging.Message{Body: make([]byte, 2000)}, messaging.ErrMessageTooLarge},
			"bad topic":       {"no spaces", ok, messaging.ErrInvalid},
			"reserved header": {"orders", &messaging.Message{Headers: map[string]string{"sb-x": "1"}}, messaging.ErrInvalid},
			"nil message":     {"orders", nil, messaging.ErrInvalid},
			"long key":        {"orders", &messaging.Message{Key: strings.Repeat("k", outbox.MaxKeyLength+1)}, messaging.ErrInvalid},
		} {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := ob.Publish(ctx, tx, tc.topic, ok, tc.m); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v; want %v", name, err, tc.want)
			}
			if err := tx.Commit(); err != nil {
				t.Fatalf("%s: the transaction should still commit: %v", name, err)
			}
		}
		if n, _, err := ob.Backlog(ctx); err != nil || n != 0 {
			t.Fatalf("backlog %d, %v: a refused call wrote rows", n, err)
		}
		missing, err := outbox.New(db.DB, c, outbox.WithTable("sbtest_missing_table"))
		if err != nil {
			t.Fatal(err)
		}
		tx, err = db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if err := missing.Publish(ctx, tx, "orders", ok); !errors.Is(err, outbox.ErrMissingTable) {
			t.Errorf("missing table: %v; want ErrMissingTable", err)
		}
		if err := missing.Relay(ctx); !errors.Is(err, outbox.ErrMissingTable) {
			t.Errorf("relay on a missing table: %v; want ErrMissingTable", err)
		}
		if _, err := outbox.New(db.DB, c, outbox.WithTable("Bad-Name")); !errors.Is(err, messaging.ErrInvalid) {
			t.Errorf("bad table name: %v", err)
		}
	})
}

// TestRefusedRowsMovedAside: a row the relay's transport refuses for
// good goes to the dead table with its error; the key's other rows are
// relayed in order.
func TestRefusedRowsMovedAside(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		writer := newOutbox(t, db, memClient(t)) // 1 MiB limit
		small := memClient(t, inmem.WithMaxMessageSize(1000))
		got := newReceived()
		if _, err := small.Subscribe(ctx, "orders", "billing", got.handler); err != nil {
			t.Fatal(err)
		}
		inTx(t, ctx, db.DB, func(tx *sql.Tx) error {
			return writer.Publish(ctx, tx, "orders",
				&messaging.Message{ID: "a", Key: "k0", Body: []byte("k0/0")},
				&messaging.Message{ID: "big", Key: "k0", Body: make([]byte, 5000)},
				&messaging.Message{ID: "b", Key: "k0", Body: []byte("k0/1")})
		})
		relay := sibling(t, db, writer, small)
		startRelays(t, ctx, relay)
		got.waitIDs(t, ctx, []string{"a", "b"})
		waitEmpty(t, ctx, writer)
		checkOrder(t, got.snapshot())
		dead, err := writer.Dead(ctx, 10)
		if err != nil || len(dead) != 1 || dead[0].ID != "big" || !strings.Contains(dead[0].Error, "bytes") {
			t.Fatalf("dead rows %+v, %v; want the big one with its error", dead, err)
		}
	})
}

// TestParallelRelays: two and four relays over 10,000 keyed rows,
// committed while they run, keep each key's order and lose and duplicate
// nothing.
func TestParallelRelays(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 10,000 rows per run")
	}
	for _, relays := range []int{2, 4} {
		t.Run(map[int]string{2: "two", 4: "four"}[relays], func(t *testing.T) {
			outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				b, err := inmem.NewBroker()
				if err != nil {
					t.Fatal(err)
				}
				c := clientOn(t, b)
				ob := newOutbox(t, db, c)
				got := newReceived()
				if _, err := c.Subscribe(ctx, "orders", "billing", got.handler, messaging.WithMaxInFlight(256)); err != nil {
					t.Fatal(err)
				}
				var perRelay []*atomic.Int64
				var obs []*outbox.Outbox
				for range relays {
					n := new(atomic.Int64)
					perRelay = append(perRelay, n)
					rc := clientOn(t, b, messaging.WithSendMiddleware(countSends(n)))
					obs = append(obs, sibling(t, db, ob, rc, outbox.WithRedeliveryHook(func(seq int64, id string, _ int) {
						t.Errorf("row %d (%s) redelivered without a crash", seq, id)
					})))
				}
				// The relays start first: rows are committed while they run.
				start := time.Now()
				startRelays(t, ctx, obs...)
				ids := writeKeyed(t, ctx, db.DB, ob, "orders", 10000, 50, 500)
				got.waitIDs(t, ctx, ids)
				waitEmpty(t, ctx, ob)
				msgs := got.snapshot()
				if dups := checkOrder(t, msgs); dups != 0 || len(msgs) != len(ids) {
					t.Fatalf("%d messages for %d rows, %d duplicates", len(msgs), len(ids), dups)
				}
				var split []int64
				for _, n := range perRelay {
					split = append(split, n.Load())
				}
				t.Logf("%d rows relayed by %d relays in %s (per relay: %v)", len(ids), relays, time.Since(start).Round(time.Millisecond), split)
			})
		})
	}
}
