package outbox_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/switchboard-go/switchboard/kafka" // kafka://
	"github.com/switchboard-go/switchboard/kafka/kafkatest"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
	"github.com/switchboard-go/switchboard/transport"
)

// The child relay's environment.
const (
	childEnv      = "OUTBOX_TEST_CHILD" // set: this process is the child relay
	childDBEnv    = "OUTBOX_TEST_DB_URL"
	childTableEnv = "OUTBOX_TEST_TABLE"
	childURLEnv   = "OUTBOX_TEST_BROKER_URL"
)

// relayChild runs a relay whose first send the broker accepts and after
// which it stops dead, announcing "accepted N" on stdout, so that the
// parent kills it between the broker's acceptance and the rows' removal.
func relayChild() int {
	ctx := context.Background()
	db, _, err := outbox.OpenDB(os.Getenv(childDBEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	hold := func(next messaging.SendFunc) messaging.SendFunc {
		return func(ctx context.Context, to transport.Address, msgs []*transport.Message) error {
			if err := next(ctx, to, msgs); err != nil {
				return err
			}
			fmt.Printf("accepted %d\n", len(msgs))
			select {} // mid-batch: sent, not yet removed; the parent kills us here
		}
	}
	c, err := messaging.Open(ctx, os.Getenv(childURLEnv), messaging.WithSendMiddleware(hold))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ob, err := outbox.New(db, c, outbox.WithTable(os.Getenv(childTableEnv)), outbox.WithBatchSize(50))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := ob.Relay(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestRelayKilled: a relay process killed with SIGKILL after the broker
// accepted a batch and before it removed the rows loses nothing; the next
// relay sends the batch again, reports each of those rows as redelivered,
// and keeps every key's order.
func TestRelayKilled(t *testing.T) {
	url := kafkatest.URL(t)
	outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := messaging.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var redelivered atomic.Int64
		ob := newOutbox(t, db, c, outbox.WithRedeliveryHook(func(int64, string, int) { redelivered.Add(1) }))
		topic := "crash-" + ob.Table()
		got := newReceived()
		if _, err := c.Subscribe(ctx, topic, "billing", got.handler); err != nil {
			t.Fatal(err)
		}
		ids := writeKeyed(t, ctx, db.DB, ob, topic, 300, 10, 100)

		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1", childDBEnv+"="+db.URL, childTableEnv+"="+ob.Table(), childURLEnv+"="+url)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "accepted ") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child relay: %q, %v", line, err)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		var sent int
		fmt.Sscanf(line, "accepted %d", &sent)
		if n, _, err := ob.Backlog(ctx); err != nil || n != len(ids) {
			t.Fatalf("backlog after the kill %d, %v; want all %d rows still there", n, err, len(ids))
		}

		startRelays(t, ctx, ob)
		got.waitIDs(t, ctx, ids)
		waitEmpty(t, ctx, ob)
		msgs := got.snapshot()
		dups := checkOrder(t, msgs)
		t.Logf("killed relay had sent %d; %d received for %d rows; %d duplicates; %d reported redelivered", sent, len(msgs), len(ids), dups, redelivered.Load())
		if sent == 0 || redelivered.Load() != int64(sent) || dups > sent {
			t.Fatalf("the killed relay sent %d rows; the next one reported %d redelivered and %d arrived twice", sent, redelivered.Load(), dups)
		}
	})
}
