package main

// Tests of the built binary, as a newcomer runs it: exit codes, one
// --timeout from dial to result, URLs without a host, credential errors,
// error text.

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/kafka/kafkatest"
	"github.com/switchboard-go/switchboard/transport"
)

// runBin runs the built binary with extra environment variables and
// returns its exit code and outputs. It fails the test if the binary has
// not exited within limit (a generous bound, not a timing assertion).
func runBin(t *testing.T, limit time.Duration, env []string, args ...string) (int, string, string) {
	t.Helper()
	bin := buildCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("switchboard %s did not exit within %s; stderr:\n%s", strings.Join(args, " "), limit, stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("switchboard %s: %v", strings.Join(args, " "), err)
	}
	return code, stdout.String(), stderr.String()
}

// cleanEnv is the test's environment without SWITCHBOARD_URL, so that a
// test's --url or env decides.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWITCHBOARD_URL=") {
			out = append(out, kv)
		}
	}
	return out
}

// TestBuiltBinaryExitCodes checks the documented exit code table on the
// built binary (go run would turn every failure into 1).
func TestBuiltBinaryExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	mem := []string{"SWITCHBOARD_URL=mem://"}
	cases := []struct {
		name string
		env  []string
		args []string
		want int
	}{
		{"help", mem, []string{"--help"}, exitOK},
		{"publish on mem", mem, []string{"publish", "orders", "x"}, exitOK},
		{"unknown flag", mem, []string{"publish", "--bogus", "orders", "x"}, exitUsage},
		{"unknown command", mem, []string{"bogus"}, exitUsage},
		{"URL without a host", nil, []string{"--url", "amqp://", "publish", "orders", "x"}, exitUsage},
		{"unknown scheme", nil, []string{"--url", "nats://127.0.0.1", "publish", "orders", "x"}, exitUsage},
		{"broker refuses connections", nil, []string{"--url", "amqp://guest:guest@127.0.0.1:1/", "publish", "orders", "x"}, exitError},
		{"fewer messages than --count in time", mem, []string{"subscribe", "orders", "--group", "g", "--count", "1", "--timeout", "300ms"}, exitTimeout},
		{"request nobody", mem, []string{"request", "nobody", "--timeout", "2s", "x"}, exitNoResponders},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runBin(t, time.Minute, tc.env, tc.args...)
			expectCode(t, strings.Join(tc.args, " "), code, tc.want, stderr)
			if tc.want == exitError && strings.Contains(stderr, "for usage") {
				t.Errorf("a runtime error points to --help:\n%s", stderr)
			}
		})
	}
	t.Run("remote error", func(t *testing.T) {
		// Two processes on one broker: kfake, in this test process.
		env := []string{"SWITCHBOARD_URL=" + kafkatest.URL(t)}
		service := "failing-" + uuid.NewString()[:8]
		serve := startBin(t, env, "serve", service, "--exec", "echo out of stock >&2; exit 3")
		serve.waitReady(t)
		code, _, stderr := runBin(t, time.Minute, env, "request", service, "x", "--timeout", "20s")
		expectCode(t, "request to a failing responder", code, exitRemote, stderr)
		if !strings.Contains(stderr, "out of stock") {
			t.Errorf("stderr lacks the responder's error:\n%s", stderr)
		}
		serve.interrupt(t)
	})
}

// binProc is the built binary running in the background.
type binProc struct {
	cmd    *exec.Cmd
	stderr *lineWatcher
	done   chan struct{} // closed when stderr is at EOF
	out    *syncBuffer
}

// startBin starts the built binary; the test's cleanup interrupts it and
// waits for it.
func startBin(t *testing.T, env []string, args ...string) *binProc {
	t.Helper()
	cmd := exec.Command(buildCLI(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	p := &binProc{cmd: cmd, out: &syncBuffer{}}
	cmd.Stdout = p.out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.stderr, p.done = watch(stderr, "msg=ready")
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(os.Interrupt)
			p.wait(t)
		}
	})
	return p
}

// waitReady waits for the "ready" line.
func (p *binProc) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-p.stderr.found:
	case <-p.done:
		p.wait(t)
		t.Fatalf("%v exited before it was ready:\n%s", p.cmd.Args, p.stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("%v not ready:\n%s", p.cmd.Args, p.stderr.String())
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *binProc) wait(t *testing.T) int {
	t.Helper()
	exited := make(chan error, 1)
	go func() {
		<-p.done
		exited <- p.cmd.Wait()
	}()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-exited
		t.Fatalf("%v did not exit:\n%s", p.cmd.Args, p.stderr.String())
	}
	return -1
}

// interrupt sends SIGINT (Ctrl-C) and expects a graceful exit 0.
func (p *binProc) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != exitOK {
		t.Errorf("%v after SIGINT: exit %d:\n%s", p.cmd.Args, code, p.stderr.String())
	}
}

// TestTimeoutCoversConnecting: against a broker that accepts TCP but never
// answers, publish and request give up at --timeout with exit 3, on every
// network transport.
func TestTimeoutCoversConnecting(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	addr := testenv.SilentBroker(t)
	urls := map[string]string{
		"rabbitmq": "amqp://guest:guest@" + addr + "/",
		"kafka":    "kafka://" + addr,
		"sqs":      "sqs://?region=us-east-1&endpoint=" + url.QueryEscape("http://"+addr),
	}
	env := []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true"}
	for name, u := range urls {
		t.Run(name, func(t *testing.T) {
			for _, args := range [][]string{
				{"--url", u, "publish", "orders", "x", "--timeout", "2s"},
				{"--url", u, "request", "prices", "x", "--timeout", "2s"},
			} {
				// The binary must be gone well before this bound; the
				// default --timeout (30s) would not be.
				code, _, stderr := runBin(t, 25*time.Second, env, args...)
				expectCode(t, strings.Join(args, " "), code, exitTimeout, stderr)
				if strings.Contains(stderr, "guest:guest") {
					t.Errorf("password printed:\n%s", stderr)
				}
			}
		})
	}
}

// TestURLWithoutWhereIsInvalid: a URL that does not say where to connect
// fails with ErrInvalid (exit 2) instead of guessing localhost.
func TestURLWithoutWhereIsInvalid(t *testing.T) {
	ctx := context.Background()
	for _, u := range []string{"amqp://", "amqps://", "amqp:///vhost", "amqp://guest:guest@:5672/", "kafka://", "kafka://:9092", "sqs://"} {
		t.Setenv("AWS_REGION", "")
		t.Setenv("AWS_DEFAULT_REGION", "")
		t.Setenv("AWS_CONFIG_FILE", os.DevNull)
		t.Setenv("AWS_PROFILE", "")
		tr, err := transport.Open(ctx, u)
		if err == nil {
			tr.Close()
		}
		if !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("transport.Open(%q) = %v, want ErrInvalid", u, err)
		}
	}
	if testing.Short() {
		return
	}
	code, _, stderr := runBin(t, time.Minute, []string{"AWS_REGION=", "AWS_DEFAULT_REGION=", "AWS_CONFIG_FILE=" + os.DevNull}, "--url", "amqp://", "publish", "orders", "x")
	expectCode(t, "publish --url amqp://", code, exitUsage, stderr)
	if !strings.Contains(stderr, "no host") {
		t.Errorf("stderr does not say what is wrong:\n%s", stderr)
	}
}

// TestWrongPasswordIsRuntimeError: refused credentials are a runtime
// error (exit 1), not a usage error, and the message names each layer
// once with the URL redacted the one way (user:xxxxx@).
func TestWrongPasswordIsRuntimeError(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and needs RabbitMQ")
	}
	u, err := url.Parse(amqpURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "wrong-s3cret")
	code, _, stderr := runBin(t, time.Minute, nil, "--url", u.String(), "publish", "orders", "x", "--timeout", "20s")
	expectCode(t, "publish with a wrong password", code, exitError, stderr)
	if strings.Contains(stderr, "for usage") {
		t.Errorf("a credential error points to --help:\n%s", stderr)
	}
	if strings.Contains(stderr, "wrong-s3cret") {
		t.Errorf("password printed:\n%s", stderr)
	}
	if !strings.Contains(stderr, u.User.Username()+":xxxxx@") {
		t.Errorf("URL not redacted as user:xxxxx@:\n%s", stderr)
	}
	checkLayersOnce(t, stderr, "rabbitmq: ", "open ")
}

// TestErrorTextNamesEachLayerOnce: a refused connection's error names the
// URL, the adapter and the operation once each, redacted as user:xxxxx@
// even when the user name equals the password.
func TestErrorTextNamesEachLayerOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	for _, u := range []string{"amqp://guest:guest@127.0.0.1:1/", "kafka://guest:guest@127.0.0.1:1?sasl=plain"} {
		code, _, stderr := runBin(t, time.Minute, nil, "--url", u, "publish", "orders", "x", "--timeout", "10s")
		if code == exitOK || code == exitUsage {
			t.Fatalf("%s: exit %d:\n%s", u, code, stderr)
		}
		if !strings.Contains(stderr, "guest:xxxxx@") || strings.Contains(stderr, "xxxxx:xxxxx") {
			t.Errorf("%s: URL not redacted as guest:xxxxx@:\n%s", u, stderr)
		}
		scheme, _, _ := strings.Cut(u, ":")
		layer := map[string]string{"amqp": "rabbitmq: ", "kafka": "kafka: "}[scheme]
		checkLayersOnce(t, stderr, layer, "open ")
	}
}

// checkLayersOnce fails when any of the strings occurs more than once in
// the first line of text (the error line).
func checkLayersOnce(t *testing.T, text string, layers ...string) {
	t.Helper()
	line, _, _ := strings.Cut(text, "\n")
	for _, l := range layers {
		if n := strings.Count(line, l); n > 1 {
			t.Errorf("%q appears %d times in the error:\n%s", l, n, line)
		}
	}
}
