package outbox_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/kafka/kafkatest"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
	_ "github.com/switchboard-go/switchboard/rabbitmq"
	"github.com/switchboard-go/switchboard/rabbitmq/rabbitmqtest"
	_ "github.com/switchboard-go/switchboard/sqs" // sqs://
	"github.com/switchboard-go/switchboard/sqs/sqstest"
)

// TestTransports runs the outbox over every transport, on each database:
// what is written in committed transactions arrives, each key in order,
// with every field; what is rolled back never does; notifications reach
// their recipient; a message over the transport's limit is refused at
// write time.
func TestTransports(t *testing.T) {
	for _, tr := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"inmem", func(*testing.T) string { return "mem://" }},
		{"kafka", func(t *testing.T) string { return kafkatest.URL(t) }},
		{"rabbitmq", rabbitURL},
		{"sqs", func(t *testing.T) string { return sqstest.URL(t) + "&fifo=true" }},
	} {
		t.Run(tr.name, func(t *testing.T) {
			if testing.Short() && tr.name != "inmem" {
				t.Skip("-short: in-memory only")
			}
			url := tr.url(t)
			outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) { runTransport(t, db, url) })
		})
	}
}

func runTransport(t *testing.T, db *outboxtest.DB, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ob := newOutbox(t, db, c)
	topic, queue := "ob-"+ob.Table(), "obq-"+ob.Table()
	got, mail := newReceived(), newReceived()
	if _, err := c.Subscribe(ctx, topic, "billing", got.handler); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Listen(ctx, queue, mail.handler); err != nil {
		t.Fatal(err)
	}

	if max := c.Capabilities().MaxMessageSize; max > 0 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = ob.Publish(ctx, tx, topic, &messaging.Message{Body: make([]byte, max+1)})
		tx.Rollback()
		if !errors.Is(err, messaging.ErrMessageTooLarge) {
			t.Fatalf("message of %d bytes on a transport of %d: %v; want ErrMessageTooLarge", max+1, max, err)
		}
	}
	// Rolled back: never sent.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Publish(ctx, tx, topic, &messaging.Message{ID: "rolled-back", Key: "k0", Body: []byte("k0/0")}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()

	when := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	full := &messaging.Message{ID: "full", Key: "k9", Body: []byte("k9/0"), Headers: map[string]string{"tenant": "acme"},
		ContentType: "text/plain", Type: "order.created", Version: "2", Time: when, CorrelationID: "corr-1"}
	ids := writeKeyed(t, ctx, db.DB, ob, topic, 60, 3, 7)
	inTx(t, ctx, db.DB, func(tx *sql.Tx) error {
		if err := ob.Publish(ctx, tx, topic, full); err != nil {
			return err
		}
		return ob.Notify(ctx, tx, queue, &messaging.Message{ID: "mail-1", Body: []byte("welcome")})
	})
	ids = append(ids, "full")
	startRelays(t, ctx, ob)
	got.waitIDs(t, ctx, ids)
	mail.waitIDs(t, ctx, []string{"mail-1"})
	waitEmpty(t, ctx, ob)
	msgs := got.snapshot()
	checkOrder(t, msgs)
	for _, m := range msgs {
		switch m.ID {
		case "rolled-back":
			t.Fatal("received a message of a rolled-back transaction")
		case "full":
			if m.Header("tenant") != "acme" || m.ContentType != "text/plain" || m.Type != "order.created" ||
				m.Version != "2" || !m.Time.Equal(when) || m.CorrelationID != "corr-1" {
				t.Fatalf("fields lost on the way: %+v", m)
			}
		}
	}
}

// rabbitURL returns the RabbitMQ URL (SWITCHBOARD_AMQP_URL or the local
// broker) with a prefix of its own, whose queues are deleted at the end.
func rabbitURL(t *testing.T) string {
	url := os.Getenv("SWITCHBOARD_AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
		if c, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second); err != nil {
			testenv.Missing(t, "rabbitmq", "SWITCHBOARD_AMQP_URL is unset and nothing answers on 127.0.0.1:5672")
		} else {
			c.Close()
		}
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("prefix", fmt.Sprintf("outbox-%s-", strconv.FormatInt(time.Now().UnixNano(), 36)))
	u.RawQuery = q.Encode()
	url = u.String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rabbitmqtest.DeleteDeclared(ctx, url, ""); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return url
}
