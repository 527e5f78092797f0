package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// noAdmin hides the transport's Admin methods.
type noAdmin struct{ transport.Transport }

func TestAdminUnsupported(t *testing.T) {
	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	c, err := messaging.New(noAdmin{b.Transport()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Admin().DeleteQueue(ctx, "q"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("DeleteQueue on a transport without Admin: %v, want errors.ErrUnsupported", err)
	}
	if err := c.Admin().DeleteGroup(ctx, "t", ""); !errors.Is(err, messaging.ErrInvalid) {
		t.Errorf("DeleteGroup with an empty group: %v, want ErrInvalid", err)
	}
	c.Close()
	if _, err := c.Admin().Inspect(ctx, "q", ""); !errors.Is(err, errors.ErrUnsupported) && !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Inspect after Close: %v", err)
	}
}

func TestAdminAfterClose(t *testing.T) {
	c, err := messaging.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Admin().Purge(context.Background(), "q", ""); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Purge after Close: %v, want ErrClosed", err)
	}
}

// TestRetryZeroFieldsDefault is issue 14's input 11: a policy with only
// MaxAttempts set is the default policy with that many attempts.
func TestRetryZeroFieldsDefault(t *testing.T) {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	calls := make(chan int, 10)
	_, err = c.Subscribe(ctx, "orders", "billing", func(_ context.Context, m *messaging.Message) error {
		calls <- m.Attempt
		return errors.New("fail")
	}, messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 3}))
	if err != nil {
		t.Fatalf("WithRetry(RetryPolicy{MaxAttempts: 3}): %v", err)
	}
	dead := make(chan *messaging.DeadLetter, 1)
	if _, err := c.Listen(ctx, messaging.DeadLetterQueue("orders", "billing"), func(_ context.Context, m *messaging.Message) error {
		dl, err := messaging.ParseDeadLetter(m)
		if err != nil {
			return err
		}
		dead <- dl
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "orders", &messaging.Message{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case dl := <-dead:
		if dl.LastAttempt != 3 {
			t.Errorf("dead-lettered after %d attempts, want 3", dl.LastAttempt)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no dead letter")
	}
	if n := len(calls); n != 3 {
		t.Errorf("%d handler calls, want 3", n)
	}
	for _, bad := range []messaging.RetryPolicy{{MaxAttempts: -1}, {InitialBackoff: -time.Second}, {Multiplier: -1}, {Jitter: -0.5}} {
		if _, err := c.Subscribe(ctx, "orders", "other", func(context.Context, *messaging.Message) error { return nil },
			messaging.WithRetry(bad)); !errors.Is(err, messaging.ErrInvalid) {
			t.Errorf("WithRetry(%+v): %v, want ErrInvalid", bad, err)
		}
	}
}

// TestSubscribeContextGovernsOnlyTheCall is issue 14's input 11: the
// context given to Subscribe (and Listen, Serve, Respond) bounds the
// declaration only; cancelling it later does not stop the subscription.
func TestSubscribeContextGovernsOnlyTheCall(t *testing.T) {
	c, err := messaging.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 1)
	sub, err := c.Subscribe(ctx, "orders", "billing", func(_ context.Context, m *messaging.Message) error {
		got <- string(m.Body)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := c.Publish(context.Background(), "orders", &messaging.Message{Body: []byte("after cancel")}); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if b != "after cancel" {
			t.Errorf("got %q", b)
		}
	case <-sub.Done():
		t.Fatal("the subscription stopped when its Subscribe context was cancelled")
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received after the Subscribe context was cancelled")
	}
	select {
	case <-sub.Done():
		t.Fatal("the subscription stopped")
	default:
	}
}

// Admin: inspect, peek, purge and delete what the patterns declared.
func ExampleAdmin() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		panic(err)
	}
	defer c.Close()
	adm := c.Admin()

	if err := c.Notify(ctx, "mailer", &messaging.Message{Body: []byte("welcome")}); err != nil {
		panic(err)
	}
	info, err := adm.Inspect(ctx, "mailer", "")
	if err != nil {
		panic(err)
	}
	fmt.Println("waiting:", info.Messages)

	// Peek reads without consuming (where the broker can: mem://, Kafka).
	msgs, err := adm.Peek(ctx, "mailer", "", 10)
	if err != nil {
		panic(err)
	}
	fmt.Printf("peeked: %s\n", msgs[0].Body)

	if err := adm.Purge(ctx, "mailer", ""); err != nil {
		panic(err)
	}
	if err := adm.DeleteQueue(ctx, "mailer"); err != nil {
		panic(err)
	}
	// Nothing is ever created by Admin: a missing queue is ErrNotFound.
	_, err = adm.Inspect(ctx, "mailer", "")
	fmt.Println("after delete:", errors.Is(err, messaging.ErrNotFound))
	// Output:
	// waiting: 1
	// peeked: welcome
	// after delete: true
}
