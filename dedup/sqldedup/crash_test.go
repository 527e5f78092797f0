package sqldedup_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/dedup"
	"github.com/switchboard-go/switchboard/dedup/sqldedup"
	_ "github.com/switchboard-go/switchboard/kafka" // kafka://
	"github.com/switchboard-go/switchboard/kafka/kafkatest"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/outbox"
	"github.com/switchboard-go/switchboard/outbox/outboxtest"
)

// The child consumer's environment.
const (
	childEnv      = "SQLDEDUP_TEST_CHILD" // the crash point: "before-record" or "after-commit"
	childDBEnv    = "SQLDEDUP_TEST_DB_URL"
	childTableEnv = "SQLDEDUP_TEST_TABLES" // inbox table, effects table
	childURLEnv   = "SQLDEDUP_TEST_BROKER_URL"
	childTopicEnv = "SQLDEDUP_TEST_TOPIC"
)

// insertEffect is the handler's effect: a row in the effects table.
func insertEffect(ctx context.Context, d outbox.Dialect, effects string, m *messaging.Message) error {
	_, err := sqldedup.Tx(ctx).ExecContext(ctx, "INSERT INTO "+effects+" (msg_id) VALUES ("+d.P(1)+")", m.ID)
	return err
}

// consumerChild consumes the topic through the transactional inbox and
// dies by SIGKILL at the crash point: after the handler's effect and
// before the commit ("before-record"), or after the commit and before the
// acknowledgement ("after-commit").
func consumerChild() int {
	ctx := context.Background()
	mode := os.Getenv(childEnv)
	tables := strings.Split(os.Getenv(childTableEnv), ",")
	db, d, err := outbox.OpenDB(os.Getenv(childDBEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	store, err := sqldedup.New(db, sqldedup.WithTable(tables[0]))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mw, err := store.Transactional()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	die := func() {
		fmt.Println("dying")
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	afterCommit := func(next messaging.Handler) messaging.Handler {
		return func(ctx context.Context, m *messaging.Message) error {
			err := next(ctx, m)
			if err == nil && mode == "after-commit" {
				die()
			}
			return err
		}
	}
	h := func(ctx context.Context, m *messaging.Message) error {
		if err := insertEffect(ctx, d, tables[1], m); err != nil {
			return err
		}
		if mode == "before-record" {
			die()
		}
		return nil
	}
	c, err := messaging.Open(ctx, os.Getenv(childURLEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := c.Subscribe(ctx, os.Getenv(childTopicEnv), "billing", h, messaging.WithMiddleware(afterCommit, mw)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	select {}
}

// TestConsumerKilled: a consumer process killed (SIGKILL) between its
// handler's effect and the record, or between the commit and the
// acknowledgement, gets its message redelivered to the next consumer,
// and the effect exists once.
func TestConsumerKilled(t *testing.T) {
	url := kafkatest.URL(t)
	for _, mode := range []string{"before-record", "after-commit"} {
		t.Run(mode, func(t *testing.T) {
			outboxtest.Each(t, func(t *testing.T, db *outboxtest.DB) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				store := newStore(t, db)
				effects := outboxtest.Table(t)
				if _, err := db.ExecContext(ctx, "CREATE TABLE "+effects+" (msg_id VARCHAR(64) NOT NULL)"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.ExecContext(context.Background(), "DROP TABLE "+effects) })
				c, err := messaging.Open(ctx, url)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				topic := "inbox-" + effects
				// Declare the group, then publish the message to it.
				sub, err := c.Subscribe(ctx, topic, "billing", func(context.Context, *messaging.Message) error {
					return errors.New("not yet")
				})
				if err != nil {
					t.Fatal(err)
				}
				if err := sub.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
				if err := c.Publish(ctx, topic, &messaging.Message{ID: "pay-1", Key: "o-1"}); err != nil {
					t.Fatal(err)
				}

				cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), childEnv+"="+mode, childDBEnv+"="+db.URL,
					childTableEnv+"="+store.Table()+","+effects, childURLEnv+"="+url, childTopicEnv+"="+topic)
				cmd.Stderr = os.Stderr
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				line, _ := bufio.NewReader(out).ReadString('\n')
				err = cmd.Wait()
				var ee *exec.ExitError
				if line != "dying\n" || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("child: %q, %v; want it killed at the crash point", line, err)
				}

				// The next consumer of the group.
				mw, err := store.Transactional()
				if err != nil {
					t.Fatal(err)
				}
				var mu sync.Mutex
				calls := 0
				acked := make(chan struct{}, 1)
				ack := func(next messaging.Handler) messaging.Handler {
					return func(ctx context.Context, m *messaging.Message) error {
						err := next(ctx, m)
						if err == nil {
							acked <- struct{}{}
						}
						return err
					}
				}
				if _, err := c.Subscribe(ctx, topic, "billing", func(ctx context.Context, m *messaging.Message) error {
					mu.Lock()
					calls++
					mu.Unlock()
					return insertEffect(ctx, db.Dialect, effects, m)
				}, messaging.WithMiddleware(ack, mw)); err != nil {
					t.Fatal(err)
				}
				select {
				case <-acked:
				case <-ctx.Done():
					t.Fatal("the message was not redelivered")
				}
				var n int
				if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+effects).Scan(&n); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				want := map[string]int{"before-record": 1, "after-commit": 0}[mode]
				if n != 1 || calls != want {
					t.Fatalf("effect rows %d (want 1), handler calls after the crash %d (want %d)", n, calls, want)
				}
				if st, err := store.Begin(ctx, topic+":pay-1", "x", time.Minute); err != nil || st != dedup.Done {
					t.Fatalf("the key is %v, %v; want done", st, err)
				}
			})
		})
	}
}
