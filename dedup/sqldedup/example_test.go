package sqldedup_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/dedup/sqldedup"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
)

// A handler whose effect (a row in payments) and the record that its
// message was handled commit together: a duplicate delivery of the same
// message is acknowledged without running the handler again. The database
// is PostgreSQL (SWITCHBOARD_POSTGRES_URL, else the local one).
func ExampleStore_Transactional() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	db, _, err := outbox.OpenDB(outboxtest.URL("postgres"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	suffix := fmt.Sprint(os.Getpid())
	store, err := sqldedup.New(db, sqldedup.WithTable("example_inbox_"+suffix))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := store.Migrate(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer store.Drop(context.Background())
	payments := "example_payments_" + suffix
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+payments+" (order_id VARCHAR(64) NOT NULL)"); err != nil {
		fmt.Println(err)
		return
	}
	defer db.ExecContext(context.Background(), "DROP TABLE "+payments)

	client, err := messaging.Open(ctx, "mem://")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	mw, err := store.Transactional(dedup.WithNamespace("payments"))
	if err != nil {
		fmt.Println(err)
		return
	}
	handled := make(chan string, 2)
	pay := func(ctx context.Context, m *messaging.Message) error {
		// The effect, in the attempt's transaction.
		_, err := sqldedup.Tx(ctx).ExecContext(ctx, "INSERT INTO "+payments+" (order_id) VALUES ($1)", string(m.Body))
		return err
	}
	ack := func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			err := next(ctx, m)
			if err == nil {
				handled <- m.ID
			}
			return err
		}
	}
	if _, err := client.Listen(ctx, "payments", pay, messaging.WithMiddleware(ack, mw)); err != nil {
		fmt.Println(err)
		return
	}
	// The same message twice, as a broker redelivering it would.
	for range 2 {
		if err := client.Notify(ctx, "payments", &messaging.Message{ID: "pay-o-1", Body: []byte("o-1")}); err != nil {
			fmt.Println(err)
			return
		}
	}
	<-handled
	<-handled
	var n int
	db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+payments).Scan(&n)
	fmt.Println("payments made:", n)
	// Output: payments made: 1
}
