package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
)

// TestRelayConnectionsKilled: PostgreSQL terminates the relay's sessions
// (its lock connection and its LISTEN connection) again and again while it
// relays; the relay reconnects and loses nothing, and each key stays in
// order (a batch may be sent twice).
func TestRelayConnectionsKilled(t *testing.T) {
	db := outboxtest.Open(t, "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := memClient(t)
	ob := newOutbox(t, db, c, outbox.WithBatchSize(20))
	got := newReceived()
	if _, err := c.Subscribe(ctx, "orders", "billing", got.handler, messaging.WithMaxInFlight(256)); err != nil {
		t.Fatal(err)
	}
	ids := writeKeyed(t, ctx, db.DB, ob, "orders", 2000, 10, 200)
	startRelays(t, ctx, ob)
	// Only this test's sessions: their last statement names its table.
	kill := "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE '%" + ob.Table() + "%' AND query NOT LIKE '%pg_terminate_backend%'"
	killed := 0
	for {
		got.mu.Lock()
		n := len(got.msgs)
		got.mu.Unlock()
		if n >= len(ids) {
			break
		}
		var k int
		if err := db.QueryRowContext(ctx, kill).Scan(&k); err != nil {
			t.Fatal(err)
		}
		killed += k
		select {
		case <-got.more:
		case <-ctx.Done():
			t.Fatalf("%d of %d received after %d sessions were killed", n, len(ids), killed)
		}
	}
	got.waitIDs(t, ctx, ids)
	waitEmpty(t, ctx, ob)
	dups := checkOrder(t, got.snapshot())
	t.Logf("%d sessions killed; %d duplicates", killed, dups)
	if killed == 0 {
		t.Fatal("no session was killed: the test proved nothing")
	}
}
