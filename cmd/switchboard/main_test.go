package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/kafka/kafkatest"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/sqs/sqstest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopSQS()
	removeBuilt()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// The SQS emulator is shared by the tests: it takes seconds to start.
var sqsShared struct {
	once sync.Once
	emu  *sqstest.Emulator
	err  error
}

// sqsURL returns an sqs:// URL: SWITCHBOARD_SQS_ENDPOINT, else the shared
// emulator; else the test is skipped (or fails, when SWITCHBOARD_REQUIRE
// asks for sqs).
func sqsURL(t *testing.T) string {
	t.Helper()
	if os.Getenv(sqstest.EnvEndpoint) != "" {
		return sqstest.URL(t)
	}
	sqsShared.once.Do(func() {
		sqstest.SetDummyCredentials()
		sqsShared.emu, sqsShared.err = sqstest.Start(0)
	})
	if sqsShared.err != nil {
		testenv.Missing(t, "sqs", "%s is unset and the emulator did not start: %v", sqstest.EnvEndpoint, sqsShared.err)
	}
	return "sqs://?region=" + sqstest.Region + "&endpoint=" + url.QueryEscape(sqsShared.emu.Endpoint()) + "&wait=1s"
}

func stopSQS() {
	if sqsShared.emu != nil {
		sqsShared.emu.Stop()
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// world is one in-memory broker shared by the "processes" of a test: each
// run of the CLI opens its clients on it instead of a private mem://.
type world struct {
	t      *testing.T
	broker *inmem.Broker // nil on a network broker
	url    string        // the network broker's URL
	suffix string        // makes names unique on a durable broker
	wait   string        // --wait of dlq commands
}

// n returns a topic, recipient or service name unique to the test on a
// network broker (whose queues outlive the test).
func (w *world) n(name string) string { return name + w.suffix }

// eachTransport runs fn on a shared in-memory broker, on Kafka (the
// cluster in SWITCHBOARD_KAFKA_BROKERS, else an in-process kfake
// cluster), on SQS (SWITCHBOARD_SQS_ENDPOINT, else the fauxqs emulator)
// and, when one is found, on RabbitMQ.
func eachTransport(t *testing.T, fn func(t *testing.T, w *world)) {
	t.Run("mem", func(t *testing.T) { fn(t, newWorld(t)) })
	t.Run("rabbitmq", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: in-memory only")
		}
		url := amqpURL(t)
		fn(t, &world{t: t, url: url, suffix: "-" + uuid.NewString()[:8], wait: "1s"})
	})
	t.Run("kafka", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: in-memory only")
		}
		fn(t, &world{t: t, url: kafkatest.URL(t), suffix: "-" + uuid.NewString()[:8], wait: "3s"})
	})
	t.Run("sqs", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: in-memory only")
		}
		fn(t, &world{t: t, url: sqsURL(t), suffix: "-" + uuid.NewString()[:8], wait: "3s"})
	})
}

func newWorld(t *testing.T) *world {
	t.Helper()
	b, err := inmem.NewBroker()
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, broker: b, wait: "300ms"}
}

// client opens a client on the shared broker, closed at the end of the
// test.
func (w *world) client() *messaging.Client {
	w.t.Helper()
	var c *messaging.Client
	var err error
	if w.broker != nil {
		c, err = messaging.New(w.broker.Transport())
	} else {
		c, err = messaging.Open(context.Background(), w.url)
	}
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.Close() })
	return c
}

// proc is one run of the CLI.
type proc struct {
	args           []string
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan int
}

// start runs the CLI with args in the background.
func (w *world) start(stdin io.Reader, args ...string) *proc {
	p := &proc{args: args, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1)}
	e := &env{
		stdin:  stdin,
		stdout: p.stdout,
		stderr: p.stderr,
		getenv: func(string) string { return "" },
		open: func(ctx context.Context, _ string, opts ...messaging.ClientOption) (*messaging.Client, error) {
			if w.broker == nil {
				return messaging.Open(ctx, w.url, opts...)
			}
			return messaging.New(w.broker.Transport(), opts...)
		},
		terminal: func(any) bool { return false },
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- runEnv(ctx, e, args) }()
	w.t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			w.t.Errorf("%q did not stop", args)
		}
	})
	return p
}

// run runs the CLI with args and returns its exit code and outputs.
func (w *world) run(args ...string) (int, string, string) {
	return w.runIn(nil, args...)
}

func (w *world) runIn(stdin io.Reader, args ...string) (int, string, string) {
	w.t.Helper()
	p := w.start(stdin, args...)
	code := p.wait(w.t)
	return code, p.stdout.String(), p.stderr.String()
}

// wait waits for the run to end and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-p.done:
		p.done <- code // for the cleanup
		return code
	case <-time.After(20 * time.Second):
		t.Fatalf("%q still running; stderr:\n%s", p.args, p.stderr.String())
	}
	return -1
}

// waitReady waits until the run logs that it is subscribed.
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), "msg=ready") {
		if time.Now().After(deadline) {
			t.Fatalf("%q not ready; stderr:\n%s", p.args, p.stderr.String())
		}
		select {
		case code := <-p.done:
			p.done <- code
			t.Fatalf("%q exited %d before it was ready; stderr:\n%s", p.args, code, p.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func expectCode(t *testing.T, what string, got, want int, stderr string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: exit code %d, want %d; stderr:\n%s", what, got, want, stderr)
	}
}

func TestPublishSubscribeJSON(t *testing.T) { eachTransport(t, testPublishSubscribeJSON) }

func testPublishSubscribeJSON(t *testing.T, w *world) {
	sub := w.start(nil, "subscribe", "--group", "billing", w.n("orders"), "--count", "1", "--json")
	sub.waitReady(t)

	code, out, errOut := w.run("publish", w.n("orders"), `{"total":42}`, "--header", "tenant=acme", "--header", "trace=abc",
		"--key", "customer-42", "--type", "order.created", "--version", "2", "--content-type", "application/json")
	expectCode(t, "publish", code, exitOK, errOut)
	id := strings.TrimSpace(out)
	if id == "" {
		t.Fatal("publish printed no message ID")
	}
	expectCode(t, "subscribe", sub.wait(t), exitOK, sub.stderr.String())

	var got jsonMessage
	if err := json.Unmarshal([]byte(sub.stdout.String()), &got); err != nil {
		t.Fatalf("subscribe output is not one JSON line: %v\n%s", err, sub.stdout.String())
	}
	if got.ID != id || got.Key != "customer-42" || got.Type != "order.created" || got.Version != "2" ||
		got.ContentType != "application/json" || got.Attempt != 1 || got.Topic != w.n("orders") {
		t.Errorf("message = %+v; published ID %s", got, id)
	}
	if got.Body == nil || *got.Body != `{"total":42}` {
		t.Errorf("body = %v", got.Body)
	}
	if got.Headers["tenant"] != "acme" || got.Headers["trace"] != "abc" || len(got.Headers) != 2 {
		t.Errorf("headers = %v", got.Headers)
	}
}

func TestNotifyListenText(t *testing.T) { eachTransport(t, testNotifyListenText) }

func testNotifyListenText(t *testing.T, w *world) {
	// Notifications are held until the recipient listens.
	dir := t.TempDir()
	file := filepath.Join(dir, "body.txt")
	if err := os.WriteFile(file, []byte("from a file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, e := w.run("notify", w.n("mailer"), "--file", file, "--header", "lang=en"); code != exitOK {
		t.Fatalf("notify --file: %d\n%s", code, e)
	}
	if code, _, e := w.runIn(strings.NewReader("from stdin"), "notify", w.n("mailer"), "--key", "k1"); code != exitOK {
		t.Fatalf("notify from stdin: %d\n%s", code, e)
	}
	code, out, errOut := w.run("listen", w.n("mailer"), "--count", "2", "--timeout", "10s")
	expectCode(t, "listen", code, exitOK, errOut)
	for _, want := range []string{"from a file\n", "from stdin\n", "header:        lang: en", "key:           k1", "attempt:       1", "--- message "} {
		if !strings.Contains(out, want) {
			t.Errorf("listen output lacks %q:\n%s", want, out)
		}
	}
}

// TestSubscribeCountLeavesTheRest checks that --count N acknowledges only
// N messages: the next consumer of the group gets the others.
func TestSubscribeCountLeavesTheRest(t *testing.T) { eachTransport(t, testSubscribeCountLeavesTheRest) }

func testSubscribeCountLeavesTheRest(t *testing.T, w *world) {
	sub := w.start(nil, "subscribe", "--group", "g", w.n("t"), "--count", "1")
	sub.waitReady(t)
	code, out, errOut := w.run("publish", w.n("t"), "m", "--count", "3")
	expectCode(t, "publish", code, exitOK, errOut)
	if ids := strings.Fields(out); len(ids) != 3 {
		t.Fatalf("publish --count 3 printed %d IDs:\n%s", len(ids), out)
	}
	expectCode(t, "subscribe 1", sub.wait(t), exitOK, sub.stderr.String())
	if n := strings.Count(sub.stdout.String(), "--- message"); n != 1 {
		t.Errorf("first subscribe printed %d messages, want 1", n)
	}
	code, out, errOut = w.run("subscribe", "--group", "g", w.n("t"), "--count", "2", "--timeout", "10s")
	expectCode(t, "subscribe 2", code, exitOK, errOut)
	if n := strings.Count(out, "--- message"); n != 2 {
		t.Errorf("second subscribe printed %d messages, want 2:\n%s", n, out)
	}
	// Nothing is left: a third one times out, with exit code 3.
	code, _, errOut = w.run("subscribe", "--group", "g", w.n("t"), "--count", "1", "--timeout", "200ms")
	expectCode(t, "subscribe 3", code, exitTimeout, errOut)
}

func TestSubscribeInterruptIsGraceful(t *testing.T) {
	w := newWorld(t)
	sub := w.start(nil, "subscribe", "--group", "g", "t")
	sub.waitReady(t)
	sub.cancel()
	expectCode(t, "interrupted subscribe", sub.wait(t), exitOK, sub.stderr.String())
}

func TestRequestServe(t *testing.T) { eachTransport(t, testRequestServe) }

func testRequestServe(t *testing.T, w *world) {
	srv := w.start(nil, "serve", w.n("echo"), "--count", "1")
	srv.waitReady(t)
	code, out, errOut := w.run("request", w.n("echo"), "ping", "--header", "a=b", "--timeout", "10s")
	expectCode(t, "request", code, exitOK, errOut)
	if out != "ping\n" {
		t.Errorf("reply = %q, want %q", out, "ping\n")
	}
	expectCode(t, "serve --count 1", srv.wait(t), exitOK, srv.stderr.String())
}

func TestServeExec(t *testing.T) {
	w := newWorld(t)
	srv := w.start(nil, "serve", "upper", "--exec", `tr a-z A-Z; printf ":%s" "$SWITCHBOARD_HEADER_X_ID"`)
	srv.waitReady(t)
	code, out, errOut := w.run("request", "upper", "hello", "--header", "x-id=7", "--json")
	expectCode(t, "request", code, exitOK, errOut)
	var got jsonMessage
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("request --json: %v\n%s", err, out)
	}
	if got.Body == nil || *got.Body != "HELLO:7" {
		t.Errorf("reply body = %v, want HELLO:7", got.Body)
	}
	srv.cancel()
	expectCode(t, "interrupted serve", srv.wait(t), exitOK, srv.stderr.String())
}

func TestRequestExitCodes(t *testing.T) { eachTransport(t, testRequestExitCodes) }

func testRequestExitCodes(t *testing.T, w *world) {

	code, _, errOut := w.run("request", w.n("nobody"), "x", "--timeout", "2s")
	expectCode(t, "request to an unserved service", code, exitNoResponders, errOut)
	if !strings.Contains(errOut, "no responders") {
		t.Errorf("stderr lacks the reason:\n%s", errOut)
	}

	failing := w.start(nil, "serve", w.n("failing"), "--exec", "echo out of stock >&2; exit 3")
	failing.waitReady(t)
	code, _, errOut = w.run("request", w.n("failing"), "x", "--timeout", "10s")
	expectCode(t, "request to a failing responder", code, exitRemote, errOut)
	if !strings.Contains(errOut, "out of stock") {
		t.Errorf("stderr lacks the responder's error:\n%s", errOut)
	}

	// A service once served but not now: the request fails at once with
	// no responders on every transport (R147), long before its timeout.
	gone := w.start(nil, "serve", w.n("gone"))
	gone.waitReady(t)
	gone.cancel()
	expectCode(t, "serve", gone.wait(t), exitOK, gone.stderr.String())
	code, _, errOut = w.run("request", w.n("gone"), "x", "--timeout", "60s")
	expectCode(t, "request to a service nobody serves now", code, exitNoResponders, errOut)
}

// deadLetter makes one dead letter in the queue of group on topic, or,
// with an empty group, of the recipient topic.
func deadLetter(t *testing.T, w *world, topic, group, body string) {
	t.Helper()
	c := w.client()
	failed := make(chan struct{}, 1)
	ctx := context.Background()
	h := func(context.Context, *messaging.Message) error {
		failed <- struct{}{}
		return messaging.Permanent(errors.New("cannot bill"))
	}
	var err error
	send := "publish"
	if group == "" {
		_, err = c.Listen(ctx, topic, h)
		send = "notify"
	} else {
		_, err = c.Subscribe(ctx, topic, group, h)
	}
	if err != nil {
		t.Fatal(err)
	}
	if code, _, e := w.run(send, topic, body, "--header", "tenant=acme"); code != exitOK {
		t.Fatalf("%s: %d\n%s", send, code, e)
	}
	select {
	case <-failed:
	case <-time.After(10 * time.Second):
		t.Fatal("handler not called")
	}
	if err := c.Close(); err != nil { // waits for the handler: the dead letter is sent
		t.Fatal(err)
	}
}

func TestDLQListAndRedrive(t *testing.T) { eachTransport(t, testDLQListAndRedrive) }

func testDLQListAndRedrive(t *testing.T, w *world) {
	deadLetter(t, w, w.n("orders"), "billing", "order-1")

	for i := range 2 { // listing twice: list leaves the dead letter
		code, out, errOut := w.run("dlq", "list", "--receive", w.n("orders"), "billing", "--json", "--wait", w.wait)
		expectCode(t, "dlq list", code, exitOK, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 {
			t.Fatalf("dlq list #%d printed %d lines, want 1:\n%s", i+1, len(lines), out)
		}
		var got jsonMessage
		if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
			t.Fatal(err)
		}
		dl := got.DeadLetter
		if dl == nil || dl.Topic != w.n("orders") || dl.Group != "billing" || dl.Attempts != 1 || !dl.Permanent ||
			!strings.Contains(dl.LastError, "cannot bill") {
			t.Errorf("failure envelope = %+v", dl)
		}
		if got.Body == nil || *got.Body != "order-1" || got.Headers["tenant"] != "acme" {
			t.Errorf("dead letter = %+v", got)
		}
	}
	code, out, errOut := w.run("dlq", "list", "--receive", w.n("orders"), "billing", "--wait", w.wait)
	expectCode(t, "dlq list (text)", code, exitOK, errOut)
	if !strings.Contains(out, "dlq-error:") || !strings.Contains(out, "cannot bill") {
		t.Errorf("text listing lacks the failure envelope:\n%s", out)
	}

	code, out, errOut = w.run("dlq", "redrive", w.n("orders"), "billing", "--wait", w.wait)
	expectCode(t, "dlq redrive", code, exitOK, errOut)
	if !strings.HasSuffix(strings.TrimSpace(out), "-> "+w.n("orders")) {
		t.Errorf("redrive output = %q", out)
	}
	// The group gets the original message again ...
	code, out, errOut = w.run("subscribe", w.n("orders"), "--group", "billing", "--count", "1", "--timeout", "10s", "--json")
	expectCode(t, "subscribe after redrive", code, exitOK, errOut)
	var got jsonMessage
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Body == nil || *got.Body != "order-1" || got.Headers["tenant"] != "acme" || len(got.Headers) != 1 {
		t.Errorf("redriven message = %+v", got)
	}
	// ... and the dead-letter queue is empty.
	code, out, errOut = w.run("dlq", "list", "--receive", w.n("orders"), "billing", "--wait", w.wait)
	expectCode(t, "dlq list after redrive", code, exitOK, errOut)
	if out != "" {
		t.Errorf("dead letters left after redrive:\n%s", out)
	}
}

func TestDLQRedriveTo(t *testing.T) { eachTransport(t, testDLQRedriveTo) }

func testDLQRedriveTo(t *testing.T, w *world) {
	deadLetter(t, w, w.n("orders"), "billing", "order-2")
	retry := w.start(nil, "subscribe", w.n("orders-retry"), "--group", "billing", "--count", "1")
	retry.waitReady(t)
	code, out, errOut := w.run("dlq", "redrive", w.n("orders"), "billing", "--to", w.n("orders-retry"), "--wait", w.wait)
	expectCode(t, "dlq redrive --to", code, exitOK, errOut)
	if !strings.HasSuffix(strings.TrimSpace(out), "-> "+w.n("orders-retry")) {
		t.Errorf("redrive output = %q", out)
	}
	expectCode(t, "subscribe orders-retry", retry.wait(t), exitOK, retry.stderr.String())
	if !strings.Contains(retry.stdout.String(), "order-2") {
		t.Errorf("orders-retry got:\n%s", retry.stdout.String())
	}
}

func TestBenchTable(t *testing.T) {
	wantHeader := strings.Fields(strings.ReplaceAll(benchHeader, "\t", " "))
	for _, pattern := range []string{"pubsub", "request", "notify"} {
		t.Run(pattern, func(t *testing.T) {
			w := newWorld(t)
			code, out, errOut := w.run("bench", pattern, "--messages", "300", "--size", "64", "--concurrency", "3")
			expectCode(t, "bench", code, exitOK, errOut)
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("table has %d lines, want 2:\n%s", len(lines), out)
			}
			header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
			if strings.Join(header, " ") != strings.Join(wantHeader, " ") {
				t.Errorf("header = %q, want %q", header, wantHeader)
			}
			if len(row) != len(header) {
				t.Fatalf("row has %d columns, header %d:\n%s", len(row), len(header), out)
			}
			if row[0] != pattern || row[1] != "300" || row[2] != "64" || row[3] != "3" {
				t.Errorf("row = %q", row)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{}, "Usage:"},
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"publish", "--bogus", "t"}, "Usage: switchboard publish"},
		{[]string{"publish"}, "missing topic"},
		{[]string{"publish", "t", "a", "b"}, "too many arguments"},
		{[]string{"publish", "t", "x", "--header", "novalue"}, "must be name=value"},
		{[]string{"publish", "t", "x", "--count", "0"}, "--count 0"},
		{[]string{"publish", "bad topic!", "x"}, "not allowed"},
		{[]string{"publish", "t", "x", "--header", "sb-x=1"}, "reserved prefix"},
		{[]string{"subscribe", "t"}, "missing --group"},
		{[]string{"subscribe", "--group", "g"}, "want one TOPIC"},
		{[]string{"request"}, "missing SERVICE"},
		{[]string{"request", "s", "x", "--timeout", "0s"}, "must be positive"},
		{[]string{"serve"}, "want one SERVICE"},
		{[]string{"dlq", "peek", "t", "g"}, `unknown dlq subcommand "peek"`},
		{[]string{"dlq", "list"}, "want list|redrive"},
		{[]string{"bench", "carrier-pigeon"}, `unknown pattern "carrier-pigeon"`},
		{[]string{"bench", "pubsub", "--messages", "x"}, "invalid value"},
		{[]string{"help", "nosuch"}, `unknown command "nosuch"`},
	} {
		w := newWorld(t)
		code, _, errOut := w.run(tc.args...)
		if code != exitUsage {
			t.Errorf("%q: exit code %d, want %d; stderr:\n%s", tc.args, code, exitUsage, errOut)
		}
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: stderr lacks %q:\n%s", tc.args, tc.want, errOut)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	w := newWorld(t)
	code, out, _ := w.run("help")
	if code != exitOK || !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "mem:// is an in-memory broker private to one process") {
		t.Errorf("help: %d\n%s", code, out)
	}
	for _, c := range commands() {
		for _, args := range [][]string{{c.name, "--help"}, {c.name, "-h"}, {"help", c.name}} {
			code, out, errOut := w.run(args...)
			if code != exitOK || !strings.Contains(out, "Usage: switchboard "+c.name) || !strings.Contains(out, "Exit codes:") {
				t.Errorf("%q: exit %d\n%s%s", args, code, out, errOut)
			}
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, _ = w.run(args...)
		if code != exitOK || !strings.HasPrefix(out, "switchboard ") || !strings.Contains(out, "mem") {
			t.Errorf("%q: %d\n%s", args, code, out)
		}
	}
}

// TestSecretsNeverPrinted runs commands on URLs with secrets, with the
// real opener, and checks no output carries them.
func TestSecretsNeverPrinted(t *testing.T) {
	for _, url := range []string{
		"amqp://user:s3cr3tpw@127.0.0.1:1/", // refused
		"kafka://user:s3cr3tpw@127.0.0.1:1?sasl=bogus",
		"sqs://?region=us-east-1&secret_key=s3cr3tpw",
		"mem://?token=s3cr3tpw",
		"mem://user:s3cr3tpw@host/",
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"-v", "--url", url, "publish", "t", "x"}, nil, &stdout, &stderr)
		if code == exitOK {
			t.Errorf("%s: publish succeeded", url)
		}
		if strings.Contains(stdout.String()+stderr.String(), "s3cr3tpw") {
			t.Errorf("%s: secret printed:\n%s%s", url, stdout.String(), stderr.String())
		}
		if !strings.Contains(stderr.String(), "xxxxx") {
			t.Errorf("%s: no redacted URL in the error:\n%s", url, stderr.String())
		}
	}
}

func TestEnvURL(t *testing.T) {
	t.Setenv("SWITCHBOARD_URL", "nope://x")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"publish", "t", "x"}, nil, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), `unknown URL scheme "nope"`) {
		t.Errorf("SWITCHBOARD_URL not used: %d\n%s", code, stderr.String())
	}
	// --url wins over the environment; mem:// is private but works.
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"--url", "mem://", "publish", "t", "x"}, nil, &stdout, &stderr)
	if code != exitOK {
		t.Errorf("--url mem://: %d\n%s", code, stderr.String())
	}
}

func TestDLQRecipient(t *testing.T) { eachTransport(t, testDLQRecipient) }

func testDLQRecipient(t *testing.T, w *world) {
	deadLetter(t, w, w.n("mailer"), "", "mail-1")
	code, out, errOut := w.run("dlq", "list", "--receive", w.n("mailer"), "--wait", w.wait)
	expectCode(t, "dlq list", code, exitOK, errOut)
	if !strings.Contains(out, "mail-1") || !strings.Contains(out, "dlq-topic:     "+w.n("mailer")) {
		t.Errorf("dlq list:\n%s", out)
	}
	code, out, errOut = w.run("dlq", "redrive", w.n("mailer"), "--wait", w.wait)
	expectCode(t, "dlq redrive", code, exitOK, errOut)
	if !strings.HasSuffix(strings.TrimSpace(out), "-> "+w.n("mailer")) {
		t.Errorf("redrive output = %q", out)
	}
	code, out, errOut = w.run("listen", w.n("mailer"), "--count", "1", "--timeout", "10s")
	expectCode(t, "listen after redrive", code, exitOK, errOut)
	if !strings.Contains(out, "mail-1") || !strings.Contains(out, "tenant: acme") {
		t.Errorf("listen after redrive:\n%s", out)
	}
}

func TestGatherRespond(t *testing.T) { eachTransport(t, testGatherRespond) }

func testGatherRespond(t *testing.T, w *world) {
	dhl := w.start(nil, "respond", w.n("quotes"), "--group", "dhl", "--exec", "printf 'dhl:'; cat")
	ups := w.start(nil, "respond", w.n("quotes"), "--group", "ups", "--exec", "printf 'ups:'; cat")
	dhl.waitReady(t)
	ups.waitReady(t)
	code, out, errOut := w.run("gather", w.n("quotes"), "2kg", "--want", "2", "--timeout", "10s")
	expectCode(t, "gather", code, exitOK, errOut)
	for _, want := range []string{"dhl:2kg", "ups:2kg"} {
		if !strings.Contains(out, want) {
			t.Errorf("gather output lacks %q:\n%s", want, out)
		}
	}
	code, _, errOut = w.run("gather", w.n("quotes"), "2kg", "--want", "3", "--timeout", "300ms")
	expectCode(t, "gather --want 3 of 2 groups", code, exitTimeout, errOut)
	code, _, errOut = w.run("gather", w.n("nobody-answers"), "x", "--timeout", "2s") // room to declare the topic under -race
	expectCode(t, "gather without --want", code, exitOK, errOut)
}
