package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
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
