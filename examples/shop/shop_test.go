package main

import (
	"bytes"
	"context"
	"net"
	neturl "net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/kafka/kafkatest"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/rabbitmq/rabbitmqtest"
	"github.com/switchboard-go/switchboard/sqs/sqstest"
)

// runShop runs the whole shop on a client opened from url and checks each
// pattern's outcome.
func runShop(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	var out bytes.Buffer
	if err := Run(ctx, c, &out); err != nil {
		c.Close()
		t.Fatalf("shop on %s: %v\n%s", url, err, out.String())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"inventory reserved one book, 1 left",
		"3 carriers quoted [ups:750 dhl:990 fedex:1200]; cheapest ups:750",
		`payments replied "paid 1999 cents"`,
		"billing saw order.created o-1; analytics saw order.created o-1",
		"mailer sent: order o-1 confirmed for alice",
		"inventory refused: [out_of_stock] pen is out of stock",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestShopInMemory(t *testing.T) { runShop(t, "mem://") }

// TestShopOnRabbitMQ runs the same code on RabbitMQ: only the URL changes
// (its prefix option keeps each run's queues apart).
func TestShopOnRabbitMQ(t *testing.T) {
	url := os.Getenv("SWITCHBOARD_AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
		if c, err := net.DialTimeout("tcp", "127.0.0.1:5672", time.Second); err != nil {
			testenv.Missing(t, "rabbitmq", "SWITCHBOARD_AMQP_URL is unset and nothing answers on 127.0.0.1:5672")
		} else {
			c.Close()
		}
	}
	url = withQuery(url, "prefix", "shop-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"-")
	t.Cleanup(func() { // delete the run's queues and exchanges
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := rabbitmqtest.DeleteDeclared(ctx, url, ""); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	runShop(t, url)
}

// TestShopOnKafka runs the same code on Kafka (kfake in process, or
// SWITCHBOARD_KAFKA_BROKERS): only the URL changes.
func TestShopOnKafka(t *testing.T) { runShop(t, kafkatest.URL(t)) }

// TestShopOnSQS runs the same code on SQS/SNS (the fauxqs emulator, or
// SWITCHBOARD_SQS_ENDPOINT): only the URL changes.
func TestShopOnSQS(t *testing.T) { runShop(t, sqstest.URL(t)) }

// withQuery adds a query parameter to a URL.
func withQuery(raw, k, v string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}
