package outbox_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/switchboard-go/switchboard/codec"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
)

// Order is the example service's entity.
type Order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

// placeOrder writes an order and its order.created event in one
// transaction: both or neither.
func placeOrder(ctx context.Context, db *sql.DB, ob *outbox.Outbox, orders string, o Order) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+orders+" (id, total) VALUES ("+ob.Dialect().P(1)+", "+ob.Dialect().P(2)+")", o.ID, o.Total); err != nil {
		return err
	}
	event, err := codec.Encode(codec.JSON, "order.created", "1", o)
	if err != nil {
		return err
	}
	event.Key = o.ID // the order's events stay in order
	if err := ob.Publish(ctx, tx, "orders", event); err != nil {
		return err // messaging.ErrMessageTooLarge, messaging.ErrInvalid, outbox.ErrMissingTable...
	}
	return tx.Commit()
}

// A service writes an order and publishes its event in one transaction;
// the relay, here in the same process, sends the event once the
// transaction committed. The database is PostgreSQL
// (SWITCHBOARD_POSTGRES_URL, else the local one); any database/sql
// PostgreSQL or MySQL database works the same.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db, _, err := outbox.OpenDB(outboxtest.URL("postgres")) // or sql.Open("pgx", url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	client, err := messaging.Open(ctx, "mem://")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()

	suffix := fmt.Sprint(os.Getpid()) // tables of this run only
	ob, err := outbox.New(db, client, outbox.WithTable("example_outbox_"+suffix))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := ob.Migrate(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer ob.Drop(context.Background())
	orders := "example_orders_" + suffix
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+orders+" (id VARCHAR(64) PRIMARY KEY, total INT NOT NULL)"); err != nil {
		fmt.Println(err)
		return
	}
	defer db.ExecContext(context.Background(), "DROP TABLE "+orders)

	// Billing consumes the events.
	billed := make(chan struct{})
	if _, err := client.Subscribe(ctx, "orders", "billing", func(_ context.Context, m *messaging.Message) error {
		var o Order
		if err := json.Unmarshal(m.Body, &o); err != nil {
			return messaging.Permanent(err)
		}
		fmt.Printf("billing: %s %s total %d\n", m.Type, o.ID, o.Total)
		close(billed)
		return nil
	}); err != nil {
		fmt.Println(err)
		return
	}

	relayCtx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	relayDone := make(chan error, 1)
	go func() { relayDone <- ob.Relay(relayCtx) }()

	if err := placeOrder(ctx, db, ob, orders, Order{ID: "o-1", Total: 1999}); err != nil {
		fmt.Println(err)
		return
	}
	select {
	case <-billed:
	case <-ctx.Done():
		fmt.Println("not relayed")
	}
	stopRelay()
	fmt.Println("relay stopped:", <-relayDone)
	// Output:
	// billing: order.created o-1 total 1999
	// relay stopped: <nil>
}
