package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/kafka/kafkatest"
	"github.com/switchboard-go/switchboard/transport"
)

// built is the switchboard binary, built once per test run (the first
// time a test asks) and removed by TestMain: CLI tests run the binary
// itself, as exit codes are only true of a built binary (go run
// collapses every failure to 1).
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildCLI returns the path of the built switchboard binary.
func buildCLI(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "switchboard-cli-test")
		if built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "switchboard")
		out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// removeBuilt removes the built binary (TestMain calls it).
func removeBuilt() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

// amqpURL finds a RabbitMQ broker: SWITCHBOARD_AMQP_URL, else the local
// default if it answers; else the test is skipped (or fails, when
// SWITCHBOARD_REQUIRE asks for rabbitmq).
func amqpURL(t *testing.T) string {
	t.Helper()
	if !slices.Contains(transport.Schemes(), "amqp") {
		t.Skip("the amqp:// adapter (package rabbitmq) is not compiled in yet: see transports.go")
	}
	if u := os.Getenv("SWITCHBOARD_AMQP_URL"); u != "" {
		return u
	}
	const local = "amqp://guest:guest@127.0.0.1:5672/"
	u, _ := url.Parse(local)
	amqpProbe.once.Do(func() { amqpProbe.err = probeAMQP(u.Host) })
	if err := amqpProbe.err; err != nil {
		testenv.Missing(t, "rabbitmq", "SWITCHBOARD_AMQP_URL is unset and %s does not answer: %v", u.Host, err)
	}
	return local
}

// amqpProbe holds the result of probing the local broker, once per run.
var amqpProbe struct {
	once sync.Once
	err  error
}

// probeAMQP checks that an AMQP broker answers at addr: it sends the
// protocol header and waits for the broker's first frame (a hung broker
// accepts connections but never answers).
func probeAMQP(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(conn, b[:]); err != nil {
		return fmt.Errorf("no answer to the AMQP protocol header: %w", err)
	}
	return nil
}

// lineWatcher copies a stream and signals when a line contains a string.
type lineWatcher struct {
	mu    sync.Mutex
	text  strings.Builder
	want  string
	found chan struct{}
	once  sync.Once
}

func watch(r io.Reader, want string) (*lineWatcher, chan struct{}) {
	w := &lineWatcher{want: want, found: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			w.mu.Lock()
			w.text.WriteString(line + "\n")
			w.mu.Unlock()
			if strings.Contains(line, w.want) {
				w.once.Do(func() { close(w.found) })
			}
		}
	}()
	return w, done
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.text.String()
}

// testTwoProcesses runs "switchboard subscribe --count 1" and, once it
// is ready, "switchboard publish" as two processes on url, and checks the
// message arrives with its headers.
func testTwoProcesses(t *testing.T, url string) {
	bin := buildCLI(t)
	topic := "cli-test-" + uuid.NewString()[:8]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	environ := append(os.Environ(), "SWITCHBOARD_URL="+url)

	sub := exec.CommandContext(ctx, bin, "subscribe", topic, "--group", "cli", "--count", "1", "--json", "--timeout", "45s")
	sub.Env = environ
	sub.Cancel = func() error { return sub.Process.Signal(syscall.SIGINT) }
	sub.WaitDelay = 10 * time.Second
	stdout, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := sub.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	errW, errDone := watch(stderr, "msg=ready")
	outW, outDone := watch(stdout, "")
	select {
	case <-errW.found:
	case <-errDone:
		sub.Wait()
		t.Fatalf("subscribe exited before it was ready:\n%s", errW.String())
	case <-ctx.Done():
		t.Fatalf("subscribe not ready:\n%s", errW.String())
	}
	if strings.Contains(errW.String(), "guest:guest") {
		t.Errorf("subscribe printed the URL's password:\n%s", errW.String())
	}

	pub := exec.CommandContext(ctx, bin, "publish", topic, "hello from another process",
		"--header", "tenant=acme", "--header", "trace=t-1", "--key", "k-1")
	pub.Env = environ
	out, err := pub.CombinedOutput()
	if err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	id := strings.TrimSpace(string(out))

	<-outDone
	<-errDone
	if err := sub.Wait(); err != nil {
		t.Fatalf("subscribe: %v\nstderr:\n%s", err, errW.String())
	}
	var got jsonMessage
	if err := json.Unmarshal([]byte(outW.String()), &got); err != nil {
		t.Fatalf("subscribe output: %v\n%s", err, outW.String())
	}
	if got.ID != id || got.Key != "k-1" || got.Body == nil || *got.Body != "hello from another process" {
		t.Errorf("received %+v; published %s", got, id)
	}
	if got.Headers["tenant"] != "acme" || got.Headers["trace"] != "t-1" {
		t.Errorf("headers = %v", got.Headers)
	}
}

func TestRabbitMQPublishSubscribeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and needs RabbitMQ")
	}
	testTwoProcesses(t, amqpURL(t))
}

// TestInterruptProcess checks that SIGINT (Ctrl-C) stops a real listen
// process gracefully, with exit code 0.
func TestInterruptProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--url", "mem://", "listen", "--create", "mailer")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w, done := watch(stderr, "msg=ready")
	select {
	case <-w.found:
	case <-done:
		cmd.Wait()
		t.Fatalf("listen exited before it was ready:\n%s", w.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := cmd.Wait(); err != nil {
		t.Fatalf("listen after SIGINT: %v\n%s", err, w.String())
	}
	if !strings.Contains(w.String(), "interrupted") {
		t.Errorf("no graceful-stop log:\n%s", w.String())
	}
}

func TestKafkaPublishSubscribeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and needs Kafka")
	}
	testTwoProcesses(t, kafkatest.URL(t))
}

func TestSQSPublishSubscribeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and needs the SQS emulator")
	}
	testTwoProcesses(t, sqsURL(t)) // sqsURL sets the dummy credentials the child processes inherit
}
