package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-go/switchboard/kafka/kafkatest"
	"github.com/switchboard-go/switchboard/messaging"
)

// TestDLQListMissingBinary is issue 14's input 5, run with the built
// binary on each network broker: listing the dead letters of a mistyped
// group exits 6 (not found), not 0 with count=0, and creates nothing.
func TestDLQListMissingBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and needs brokers")
	}
	bin := buildCLI(t)
	for _, b := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"mem", func(*testing.T) string { return "mem://" }},
		{"rabbitmq", amqpURL},
		{"kafka", func(t *testing.T) string { return kafkatest.URL(t) }},
		{"sqs", sqsURL},
	} {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			typo := "a-typo-" + uuid.NewString()[:8]
			run := func(args ...string) (int, string) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, bin, args...)
				cmd.Env = append(os.Environ(), "SWITCHBOARD_URL="+url)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				switch {
				case err == nil:
					return 0, string(out)
				case errors.As(err, &ee):
					return ee.ExitCode(), string(out)
				}
				t.Fatalf("%q: %v\n%s", args, err, out)
				return -1, ""
			}
			for range 2 { // the first run created nothing the second could find
				code, out := run("dlq", "list", typo, "some-group")
				if code != exitNotFound || !strings.Contains(out, "does not exist") {
					t.Fatalf("dlq list of a missing group: exit %d, want %d (not found):\n%s", code, exitNotFound, out)
				}
			}
			for _, args := range [][]string{
				{"admin", "inspect", typo + ".some-group.dlq"},
				{"admin", "inspect", typo, "some-group"},
				{"dlq", "redrive", typo, "some-group"},
				{"dlq", "purge", typo},
				{"admin", "delete-service", typo},
			} {
				if code, out := run(args...); code != exitNotFound {
					t.Errorf("%q: exit %d, want %d (not found):\n%s", args, code, exitNotFound, out)
				}
			}
		})
	}
}

// TestDLQListLeavesDeliveryCounts: listing dead letters never raises
// their delivery count: where the broker can peek (mem://, Kafka) list
// prints them; elsewhere (RabbitMQ, SQS) it prints only the count unless
// --receive is given. The letters' next consumer sees them at Attempt 1.
func TestDLQListLeavesDeliveryCounts(t *testing.T) { eachTransport(t, testDLQListLeavesDeliveryCounts) }

func testDLQListLeavesDeliveryCounts(t *testing.T, w *world) {
	topic := w.n("orders")
	deadLetter(t, w, topic, "billing", "order-7")
	var peeked bool
	for range 3 {
		code, out, errOut := w.run("dlq", "list", topic, "billing", "--json")
		expectCode(t, "dlq list", code, exitOK, errOut)
		if !strings.Contains(errOut, "count=1") {
			t.Errorf("dlq list did not log count=1:\n%s", errOut)
		}
		if out == "" {
			if !strings.Contains(errOut, "not shown") {
				t.Errorf("dlq list printed nothing and did not say why:\n%s", errOut)
			}
			continue
		}
		peeked = true
		var got jsonMessage
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if got.Body == nil || *got.Body != "order-7" || got.DeadLetter == nil || got.DeadLetter.Group != "billing" {
			t.Errorf("dlq list = %s", out)
		}
	}
	c := w.client()
	t.Logf("%s: peeked=%v", c.Capabilities().Name, peeked)
	attempt := make(chan int, 1)
	// The listing declared nothing: reading the dead-letter queue finds
	// the letter at its first attempt.
	dlq := messaging.DeadLetterQueue(topic, "billing")
	if _, err := c.Listen(context.Background(), dlq, func(_ context.Context, m *messaging.Message) error {
		select {
		case attempt <- m.Attempt:
		default:
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-attempt:
		if a != 1 {
			t.Errorf("after three listings the dead letter is at attempt %d, want 1", a)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the dead letter is gone")
	}
	// Its consumer did not create a dead-letter queue of its own.
	if code, out, errOut := w.run("admin", "inspect", dlq+".dlq"); code != exitNotFound {
		t.Errorf("admin inspect %s.dlq: exit %d, want %d:\n%s%s", dlq, code, exitNotFound, out, errOut)
	}
}

// TestDLQListReceive: --receive reads the letters where the broker cannot
// peek, and leaves them queued.
func TestDLQListReceive(t *testing.T) { eachTransport(t, testDLQListReceive) }

func testDLQListReceive(t *testing.T, w *world) {
	topic := w.n("orders")
	deadLetter(t, w, topic, "billing", "order-8")
	for range 2 {
		code, out, errOut := w.run("dlq", "list", topic, "billing", "--receive", "--wait", w.wait)
		expectCode(t, "dlq list --receive", code, exitOK, errOut)
		if !strings.Contains(out, "order-8") || !strings.Contains(out, "cannot bill") {
			t.Errorf("dlq list --receive:\n%s", out)
		}
	}
}

// TestAdminCommands: inspect, purge, delete-queue, delete-group and
// delete-service, with not found (exit 6) once deleted.
func TestAdminCommands(t *testing.T) { eachTransport(t, testAdminCommands) }

func testAdminCommands(t *testing.T, w *world) {
	rcp := w.n("mailer")
	for _, body := range []string{"m1", "m2"} {
		if code, _, errOut := w.run("notify", rcp, body); code != exitOK {
			t.Fatalf("notify: %d\n%s", code, errOut)
		}
	}
	code, out, errOut := w.run("admin", "inspect", rcp, "--json")
	expectCode(t, "admin inspect", code, exitOK, errOut)
	var info struct{ Messages, Consumers int }
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.Messages != 2 {
		t.Errorf("admin inspect = %q (%v); want 2 messages", out, err)
	}
	code, _, errOut = w.run("admin", "purge", rcp)
	expectCode(t, "admin purge", code, exitOK, errOut)
	code, out, errOut = w.run("admin", "inspect", rcp)
	expectCode(t, "admin inspect after purge", code, exitOK, errOut)
	if !strings.Contains(out, "messages=0") {
		t.Errorf("admin inspect after purge = %q", out)
	}
	code, _, errOut = w.run("admin", "delete-queue", rcp)
	expectCode(t, "admin delete-queue", code, exitOK, errOut)
	code, _, errOut = w.run("admin", "inspect", rcp)
	expectCode(t, "admin inspect after delete-queue", code, exitNotFound, errOut)

	topic := w.n("orders")
	c := w.client()
	s, err := c.Subscribe(context.Background(), topic, "billing", func(context.Context, *messaging.Message) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The group's messages, over all its queues (RabbitMQ: its partitions).
	for _, key := range []string{"a", "b", "c"} {
		if err := c.Publish(context.Background(), topic, &messaging.Message{Key: key, Body: []byte(key)}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = w.run("admin", "inspect", topic, "billing", "--json")
	expectCode(t, "admin inspect of a group", code, exitOK, errOut)
	exact := strings.HasPrefix(w.url, "amqp") || w.broker != nil // counts without approximation or commits
	if err := json.Unmarshal([]byte(out), &info); err != nil || (exact && info.Messages != 3) {
		t.Errorf("admin inspect of a group = %q (%v); want 3 messages", out, err)
	}
	code, _, errOut = w.run("admin", "purge", topic, "billing")
	expectCode(t, "admin purge of a group", code, exitOK, errOut)
	code, out, errOut = w.run("admin", "inspect", topic, "billing")
	expectCode(t, "admin inspect of a group after purge", code, exitOK, errOut)
	if exact && !strings.Contains(out, "messages=0") {
		t.Errorf("admin inspect of a group after purge = %q", out)
	}
	code, _, errOut = w.run("admin", "delete-group", topic, "billing")
	expectCode(t, "admin delete-group", code, exitOK, errOut)
	code, _, errOut = w.run("admin", "delete-group", topic, "billing")
	expectCode(t, "admin delete-group again", code, exitNotFound, errOut)

	code, _, errOut = w.run("admin", "delete-service", w.n("nobody"))
	expectCode(t, "admin delete-service of a service never served", code, exitNotFound, errOut)
	code, _, errOut = w.run("admin", "delete-queue", "bad/name")
	expectCode(t, "admin delete-queue bad/name", code, exitUsage, errOut)
	code, _, errOut = w.run("admin", "frobnicate", "x")
	expectCode(t, "admin frobnicate", code, exitUsage, errOut)
}

// TestRequestAfterServeExitsBinary is issue 14's input 11 with real
// processes: once the only "serve" process exited, a request fails at once
// with exit 4 (no responders) on every network broker (R147): RabbitMQ
// counts the queue's consumers, Kafka the queue's group members, SQS the
// consumers' leases. The request's --timeout is long, so a wait for it
// would show as exit 3 after 30s.
func TestRequestAfterServeExitsBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and needs brokers")
	}
	bin := buildCLI(t)
	for _, b := range []struct {
		name string
		url  func(t *testing.T) string
		want int
	}{
		{"rabbitmq", amqpURL, exitNoResponders},
		{"kafka", func(t *testing.T) string { return kafkatest.URL(t) }, exitNoResponders},
		{"sqs", sqsURL, exitNoResponders},
	} {
		t.Run(b.name, func(t *testing.T) {
			url := b.url(t)
			svc := "gone-" + uuid.NewString()[:8]
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			environ := append(os.Environ(), "SWITCHBOARD_URL="+url)
			serve := exec.CommandContext(ctx, bin, "serve", svc)
			serve.Env = environ
			stderr, err := serve.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := serve.Start(); err != nil {
				t.Fatal(err)
			}
			errW, errDone := watch(stderr, "msg=ready")
			select {
			case <-errW.found:
			case <-errDone:
				serve.Wait()
				t.Fatalf("serve exited before it was ready:\n%s", errW.String())
			case <-ctx.Done():
				t.Fatalf("serve not ready:\n%s", errW.String())
			}
			if err := serve.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			<-errDone
			if err := serve.Wait(); err != nil {
				t.Fatalf("serve: %v\n%s", err, errW.String())
			}
			req := exec.CommandContext(ctx, bin, "request", svc, "x", "--timeout", "30s")
			req.Env = environ
			out, err := req.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != b.want {
				t.Errorf("request after serve exited: exit %d, want %d:\n%s", code, b.want, out)
			}
		})
	}
}

// TestListenUnknownRecipient is issue 14's input 5 for listen, on every
// transport: listen on a name nobody notified or listened to exits 6 (not
// found) and creates neither the queue nor its dead-letter queue; with
// --create it creates the queue (and still no dead-letter queue); listen
// on a dead-letter queue reads it and creates no "<name>.dlq.dlq".
func TestListenUnknownRecipient(t *testing.T) { eachTransport(t, testListenUnknownRecipient) }

func testListenUnknownRecipient(t *testing.T, w *world) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	adm := w.client().Admin()
	missing := func(name string) {
		t.Helper()
		if _, err := adm.Inspect(ctx, name, ""); !errors.Is(err, messaging.ErrNotFound) {
			t.Errorf("Inspect %s: %v, want ErrNotFound (nothing created)", name, err)
		}
	}

	typo := w.n("mialer")
	code, _, errOut := w.run("listen", typo, "--count", "1", "--timeout", "10s")
	expectCode(t, "listen on an unknown recipient", code, exitNotFound, errOut)
	if !strings.Contains(errOut, "does not exist") || !strings.Contains(errOut, "--create") {
		t.Errorf("stderr does not say the queue is missing and how to create it:\n%s", errOut)
	}
	if strings.Count(errOut, typo) != 1 {
		t.Errorf("stderr names %s %d times, want once:\n%s", typo, strings.Count(errOut, typo), errOut)
	}
	missing(typo)
	missing(messaging.DeadLetterQueue(typo, ""))

	fresh := w.n("fresh")
	code, _, errOut = w.run("listen", "--create", fresh, "--timeout", "1s")
	expectCode(t, "listen --create", code, exitOK, errOut)
	if _, err := adm.Inspect(ctx, fresh, ""); err != nil {
		t.Errorf("Inspect %s after listen --create: %v", fresh, err)
	}
	missing(messaging.DeadLetterQueue(fresh, ""))

	mailer := w.n("mailer")
	deadLetter(t, w, mailer, "", "mail-1")
	dlq := messaging.DeadLetterQueue(mailer, "")
	code, out, errOut := w.run("listen", dlq, "--count", "1", "--timeout", "10s")
	expectCode(t, "listen on a dead-letter queue", code, exitOK, errOut)
	if !strings.Contains(out, "mail-1") {
		t.Errorf("listen on %s:\n%s", dlq, out)
	}
	missing(messaging.DeadLetterQueue(dlq, ""))
}
