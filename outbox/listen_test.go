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

// TestListenWakesIdleRelay: on PostgreSQL an idle relay polling once an
// hour relays a row as soon as its transaction commits (LISTEN/NOTIFY).
func TestListenWakesIdleRelay(t *testing.T) {
	db := outboxtest.Open(t, "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := memClient(t)
	ob := newOutbox(t, db, c, outbox.WithPollInterval(time.Hour))
	got := newReceived()
	if _, err := c.Subscribe(ctx, "orders", "billing", got.handler); err != nil {
		t.Fatal(err)
	}
	startRelays(t, ctx, ob)
	for _, id := range []string{"first", "second"} {
		// After "first" arrived, the relay is idle with an hour to wait:
		// only the notification can wake it for "second".
		inTx(t, ctx, db.DB, func(tx *sql.Tx) error {
			return ob.Publish(ctx, tx, "orders", &messaging.Message{ID: id})
		})
		got.waitIDs(t, ctx, []string{id})
		waitEmpty(t, ctx, ob)
	}
}
