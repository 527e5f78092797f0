package main

// The README's CLI session, run as written, and `switchboard dev`.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// readmeBlock returns the README's shell block marked <!-- NAME -->.
func readmeBlock(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- "+name+" -->\n```sh\n")
	if !ok {
		t.Fatalf("README.md has no <!-- %s --> shell block", name)
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatalf("the README's %s block is not closed", name)
	}
	return block
}

// readmeSession returns the README's CLI session and the commands that
// follow it, as one script.
func readmeSession(t *testing.T) string {
	return readmeBlock(t, "readme-session") + readmeBlock(t, "readme-more")
}

// runSession runs the README's session with bash in a temporary
// directory: ./bin/switchboard is the built binary, the topic and service
// names are made unique, and env is added to the environment. dropExport
// removes the block's first line (export SWITCHBOARD_URL=amqp://…), as the
// README says to do after pasting a dev command's exports.
func runSession(t *testing.T, env []string, amqpURL string) string {
	t.Helper()
	script := readmeSession(t)
	const export = "export SWITCHBOARD_URL=amqp://guest:guest@127.0.0.1:5672/\n"
	if !strings.HasPrefix(script, export) {
		t.Fatalf("the session does not start with %q:\n%s", export, script)
	}
	if amqpURL != "" {
		script = "export SWITCHBOARD_URL='" + amqpURL + "'\n" + strings.TrimPrefix(script, export)
	} else {
		script = strings.TrimPrefix(script, export)
	}
	sfx := "-" + uuid.NewString()[:8]
	script = regexp.MustCompile(`\b(orders|prices|mailer|mialer|quotes)\b`).ReplaceAllString(script, "${1}"+sfx)
	// Every command must succeed (the README marks the expected failure
	// with ||).
	script = "set -e\n" + script
	script = strings.ReplaceAll(script, "./bin/switchboard", buildCLI(t))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(cleanEnv(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the README session did not finish:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("the README session: %v\n%s", err, out.String())
	}
	got := out.String()
	t.Logf("the README session's output:\n%s", got)
	if n := strings.Count(got, "exit 4"); n != 2 {
		t.Errorf("the README session printed \"exit 4\" %d times, want 2 (before prices was served, and once serve stopped):\n%s", n, got)
	}
	for _, want := range []string{
		"header:        tenant: acme", `{"id":1}`, // the subscriber got the message
		"exit 4",  // nobody served prices yet
		"BOOK",    // the echo service, through tr a-z A-Z
		"welcome", // listen got the notification
		"exit 6",  // listen on a mistyped recipient
		"12 EUR",  // gather got the dhl group's reply
		"msg/s",   // bench's table
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the README session's output lacks %q:\n%s", want, got)
		}
	}
	return got
}

// TestREADMESession runs the README's CLI session on RabbitMQ, as written.
func TestREADMESession(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and needs RabbitMQ")
	}
	runSession(t, nil, amqpURL(t))
}

// devBroker starts `switchboard dev NAME --port 0`, waits until it is
// ready and returns its exports (as KEY=VALUE) and the process.
func devBroker(t *testing.T, name string) ([]string, *binProc) {
	t.Helper()
	p := startBin(t, nil, "dev", name, "--port", "0")
	p.waitReady(t)
	// stdout is copied by its own goroutine: wait for the exports' last
	// line (dev prints the exports before it logs ready).
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.out.String(), "export SWITCHBOARD_URL=") || !strings.HasSuffix(p.out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("dev %s: no exports on stdout:\n%s", name, p.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var env []string
	re := regexp.MustCompile(`^export ([A-Z0-9_]+)='(.*)'$`)
	for _, l := range strings.Split(strings.TrimSpace(p.out.String()), "\n") {
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("dev %s printed a line that is not an export: %q", name, l)
		}
		env = append(env, m[1]+"="+m[2])
	}
	return env, p
}

func lookup(env []string, key string) string {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// closedPort fails the test if something still listens on hostport.
func closedPort(t *testing.T, hostport string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostport, 2*time.Second)
	if err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after dev stopped: a process was left behind", hostport)
	}
}

// TestDevKafka: `switchboard dev kafka` prints exports through which the
// README's session works, and stops on SIGINT with nothing left behind.
func TestDevKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	env, p := devBroker(t, "kafka")
	u := lookup(env, "SWITCHBOARD_URL")
	if !strings.HasPrefix(u, "kafka://127.0.0.1:") || lookup(env, "SWITCHBOARD_KAFKA_BROKERS") == "" {
		t.Fatalf("exports: %v", env)
	}
	runSession(t, env, "")
	p.interrupt(t)
	closedPort(t, lookup(env, "SWITCHBOARD_KAFKA_BROKERS"))
}

// TestDevSQS: `switchboard dev sqs` starts the pinned emulator with dummy
// credentials, prints exports through which the README's session works,
// and stops it on SIGINT.
func TestDevSQS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the emulator")
	}
	env, p := devBroker(t, "sqs")
	ep := lookup(env, "SWITCHBOARD_SQS_ENDPOINT")
	if !strings.HasPrefix(lookup(env, "SWITCHBOARD_URL"), "sqs://?region=") || ep == "" ||
		lookup(env, "AWS_ACCESS_KEY_ID") == "" || lookup(env, "AWS_REGION") == "" {
		t.Fatalf("exports: %v", env)
	}
	runSession(t, env, "")
	p.interrupt(t)
	closedPort(t, strings.TrimPrefix(ep, "http://"))
}

// TestDevUsage: dev without a known broker is a usage error.
func TestDevUsage(t *testing.T) {
	for _, args := range [][]string{{"dev"}, {"dev", "nats"}, {"dev", "rabbitmq"}, {"dev", "kafka", "--port", "70000"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, nil, &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", args, code, exitUsage, stderr.String())
		}
	}
}

// TestDocsBuildTheBinary: the README and --help run the built binary
// where exit codes matter, never `go run` (which turns every failure
// into exit 1).
func TestDocsBuildTheBinary(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "go run ./cmd/switchboard") {
		t.Error("README.md runs the CLI with go run")
	}
	if !strings.Contains(string(b), "go build -o ./bin/switchboard ./cmd/switchboard") {
		t.Error("README.md does not show building the CLI")
	}
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"--help"}, nil, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "go build -o ./bin/switchboard ./cmd/switchboard") {
		t.Errorf("--help does not show building the binary:\n%s", stdout.String())
	}
}
