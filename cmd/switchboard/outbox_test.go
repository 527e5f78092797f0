package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
)

// TestOutboxRelay: `outbox migrate` creates the tables, `outbox relay`
// forwards rows committed by a service, `outbox status` reports the table
// empty.
func TestOutboxRelay(t *testing.T) {
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		w := newWorld(t)
		table := outboxtest.Table(t)
		if code, _, stderr := w.run("outbox", "migrate", "--db", db.URL, "--table", table); code != exitOK {
			t.Fatalf("migrate: exit %d: %s", code, stderr)
		}
		c := w.client()
		ob, err := outbox.New(db.DB, c, outbox.WithTable(table))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ob.Drop(context.Background()) })
		got := make(chan string, 10)
		if _, err := c.Subscribe(ctx, "orders", "billing", func(_ context.Context, m *messaging.Message) error {
			got <- string(m.Body)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ob.Publish(ctx, tx, "orders", &messaging.Message{Key: "o-1", Body: []byte("one")}, &messaging.Message{Key: "o-1", Body: []byte("two")}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		p := w.start(nil, "outbox", "relay", "--db", db.URL, "--table", table, "--poll", "50ms")
		for _, want := range []string{"one", "two"} {
			select {
			case b := <-got:
				if b != want {
					t.Fatalf("received %q; want %q", b, want)
				}
			case <-ctx.Done():
				t.Fatalf("nothing relayed; stderr:\n%s", p.stderr.String())
			}
		}
		p.cancel()
		if code := p.wait(t); code != exitOK {
			t.Fatalf("relay exit %d: %s", code, p.stderr.String())
		}
		code, stdout, stderr := w.run("outbox", "status", "--db", db.URL, "--table", table)
		if code != exitOK || !strings.Contains(stdout, "0 waiting") || !strings.Contains(stdout, "0 dead") {
			t.Fatalf("status: exit %d: %s%s", code, stdout, stderr)
		}
		if code, _, _ := w.run("outbox", "relay"); code != exitUsage {
			t.Fatalf("relay without a database: exit %d; want %d", code, exitUsage)
		}
	})
}
