// Command shop is a small shop of services (inventory, payments, shipping
// carriers, billing, analytics, a mailer) that talk through Switchboard
// with all five patterns. It runs on the in-memory transport by default;
// set SWITCHBOARD_URL to run it on a broker:
//
//	go run ./examples/shop
//	SWITCHBOARD_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/shop
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	c, err := messaging.OpenFromEnv(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("shop on %s\n", c.Capabilities().Name)
	if err := Run(ctx, c, os.Stdout); err != nil {
		c.Close()
		return err
	}
	return c.Close()
}
