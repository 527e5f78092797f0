package outbox_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
)

// TestDelayedMessageThroughOutbox: a message written with DeliverAt keeps
// its due time through the outbox: relayed at once, handed over not before
// it, with its DeliverAt and without the header that carried it (R114).
func TestDelayedMessageThroughOutbox(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c := memClient(t)
		ob := newOutbox(t, db, c)
		got := newReceived()
		if _, err := c.Subscribe(ctx, "reminders", "mailer", got.handler); err != nil {
			t.Fatal(err)
		}
		due := time.Now().Add(1500 * time.Millisecond)
		inTx(t, ctx, db.DB, func(tx *sql.Tx) error {
			return ob.Publish(ctx, tx, "reminders",
				&messaging.Message{ID: "later", Key: "u-1", Headers: map[string]string{"a": "b"}, DeliverAt: due},
				&messaging.Message{ID: "now", Key: "u-2"})
		})
		startRelays(t, ctx, ob)
		got.waitIDs(t, ctx, []string{"now"})
		waitEmpty(t, ctx, ob) // relayed: the broker holds the delayed message
		got.waitIDs(t, ctx, []string{"later"})
		if now := time.Now(); now.Before(due) {
			t.Errorf("delayed message handed over %v early", due.Sub(now))
		}
		for _, m := range got.snapshot() {
			if m.ID != "later" {
				continue
			}
			if !m.DeliverAt.Equal(due) || len(m.Headers) != 1 || m.Headers["a"] != "b" {
				t.Errorf("received DeliverAt %v (want %v), headers %v", m.DeliverAt, due, m.Headers)
			}
		}
	})
}
