package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bin is the command, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sbbrokers-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "sbbrokers")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runBin runs the built command with env added to the environment, and
// fails the test when it has not finished within a generous limit.
func runBin(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	limit := 30 * time.Second
	if len(args) > 0 && args[0] == "up" {
		limit = 5 * time.Minute // with Docker, up may pull images first
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("sbbrokers %s did not finish within %v (stderr: %s)", strings.Join(args, " "), limit, e.String())
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("sbbrokers %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// noDockerEnvs are environments in which no Docker engine can answer.
func noDockerEnvs(t *testing.T) map[string][]string {
	envs := map[string][]string{
		// Nothing listens on port 1; the ping fails at once.
		"DOCKER_HOST=closed-tcp-port": {"DOCKER_HOST=tcp://127.0.0.1:1"},
		// A socket path that does not exist.
		"DOCKER_HOST=missing-socket": {"DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "docker.sock")},
	}
	if _, err := checkDocker(context.Background()); err != nil {
		// This machine has no Docker: also run with the environment as it is.
		envs["as-is"] = nil
	}
	return envs
}

func TestNoDockerExitsThreeWithNothingOnStdout(t *testing.T) {
	for name, env := range noDockerEnvs(t) {
		for _, args := range [][]string{
			{"check"}, {"up"}, {"up", "rabbitmq"}, {"up", "kafka", "rabbitmq", "localstack"}, {"down"},
		} {
			t.Run(name+"/"+strings.Join(args, "_"), func(t *testing.T) {
				stdout, stderr, code := runBin(t, env, args...)
				if code != exitNoDocker {
					t.Errorf("exit code %d, want %d (stderr: %s)", code, exitNoDocker, stderr)
				}
				if stdout != "" {
					t.Errorf("stdout %q, want nothing", stdout)
				}
				if lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n"); len(lines) != 1 || !strings.Contains(stderr, "Docker") {
					t.Errorf("stderr should be one line about Docker, is %q", stderr)
				}
			})
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"nonsense"}, {"up", "redis"}, {"check", "extra"}} {
		stdout, _, code := runBin(t, []string{"DOCKER_HOST=tcp://127.0.0.1:1"}, args...)
		if code != exitUsage || stdout != "" {
			t.Errorf("sbbrokers %v: exit %d stdout %q, want %d and nothing", args, code, stdout, exitUsage)
		}
	}
}

func TestParseBrokers(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "kafka,rabbitmq,localstack"},
		{[]string{"localstack", "kafka"}, "kafka,localstack"},
		{[]string{"sqs", "AMQP", "rabbitmq"}, "rabbitmq,localstack"},
	} {
		got, err := parseBrokers(c.args)
		if err != nil || strings.Join(got, ",") != c.want {
			t.Errorf("parseBrokers(%v) = %v, %v; want %s", c.args, got, err, c.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	if got := shellQuote(`amqp://a'b@h:1`); got != `'amqp://a'\''b@h:1'` {
		t.Errorf("shellQuote = %s", got)
	}
}

// TestUpRabbitMQ starts RabbitMQ in Docker and checks that the printed URL
// answers on its port. It needs Docker, and skips without it.
func TestUpRabbitMQ(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := checkDocker(context.Background()); err != nil {
		t.Skipf("no Docker: %v", err)
	}
	run := "test-" + time.Now().Format("150405.000000")
	env := []string{"SBBROKERS_RUN=" + run}
	t.Cleanup(func() {
		if _, stderr, code := runBin(t, env, "down"); code != 0 {
			t.Errorf("down: exit %d: %s", code, stderr)
		}
	})
	stdout, stderr, code := runBin(t, env, "up", "-timeout", "4m", "rabbitmq")
	if code != 0 {
		t.Fatalf("up rabbitmq: exit %d: %s", code, stderr)
	}
	line := strings.TrimSpace(stdout)
	const prefix = "export SWITCHBOARD_AMQP_URL='"
	if strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(line, prefix) || !strings.HasSuffix(line, "'") {
		t.Fatalf("stdout %q, want one export SWITCHBOARD_AMQP_URL line", stdout)
	}
	u, err := url.Parse(strings.TrimSuffix(strings.TrimPrefix(line, prefix), "'"))
	if err != nil || u.Scheme != "amqp" || u.Port() == "" {
		t.Fatalf("bad AMQP URL in %q: %v", line, err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("nothing answers on %s: %v", u.Host, err)
	}
	defer conn.Close()
	// An AMQP 0-9-1 server answers the protocol header with Connection.Start.
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := conn.Read(buf); err != nil {
		t.Fatalf("no AMQP answer from %s: %v", u.Host, err)
	}
	if buf[0] != 1 { // frame type 1: a method frame
		t.Errorf("answer from %s is not an AMQP method frame: %x", u.Host, buf)
	}

	// down removes it; a second down finds nothing and still succeeds.
	if _, stderr, code := runBin(t, env, "down"); code != 0 {
		t.Fatalf("down: exit %d: %s", code, stderr)
	}
	if _, err := net.DialTimeout("tcp", u.Host, 2*time.Second); err == nil {
		t.Errorf("%s still answers after down", u.Host)
	}
}

// TestSilentDockerSocket: a socket that accepts and never answers (a hung
// engine) is given up on after the ping timeout.
func TestSilentDockerSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "sb") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix socket: %v", err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	start := time.Now()
	stdout, stderr, code := runBin(t, []string{"DOCKER_HOST=unix://" + sock}, "up", "rabbitmq")
	if code != exitNoDocker || stdout != "" {
		t.Errorf("exit %d stdout %q, want %d and nothing (stderr: %s)", code, stdout, exitNoDocker, stderr)
	}
	t.Logf("gave up after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(stderr))
}
