package scripts

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
)

// TestScriptsNeverKillByName: no script stops processes by name
// (pkill, killall): a user's RabbitMQ is not ours to kill.
func TestScriptsNeverKillByName(t *testing.T) {
	bad := regexp.MustCompile(`(?m)^[^#]*\b(pkill|killall)\b`)
	for _, f := range []string{"brokers.sh", "test.sh", "../.ci/run"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := bad.Find(b); m != nil {
			t.Errorf("%s kills by name: %q", f, m)
		}
	}
	// The one place brokers.sh may end a process is restart_rabbitmq,
	// which runs only under SWITCHBOARD_RABBITMQ_RESTART=1.
	b, _ := os.ReadFile("brokers.sh")
	for _, call := range regexp.MustCompile(`(?m)^[^#\n]*\brestart_rabbitmq\b[^(\n]*$`).FindAll(b, -1) {
		if !strings.Contains(string(call), "||") {
			t.Errorf("restart_rabbitmq called outside the SWITCHBOARD_RABBITMQ_RESTART branch? %q", call)
		}
	}
}

// TestBrokersFailsFastOnAWedgedBroker: a broker that accepts connections
// but never answers fails brokers.sh (exit 1) in seconds, naming the
// broker and what to do, without touching it.
func TestBrokersFailsFastOnAWedgedBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scripts/brokers.sh")
	}
	addr := testenv.SilentBroker(t)
	for name, env := range map[string][]string{
		"rabbitmq": {"SWITCHBOARD_AMQP_URL=amqp://guest:guest@" + addr + "/"},
		"sqs":      {"SWITCHBOARD_SQS_ENDPOINT=http://" + addr},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", "brokers.sh")
			for _, kv := range os.Environ() {
				k, _, _ := strings.Cut(kv, "=")
				switch k {
				case "SWITCHBOARD_RABBITMQ_RESTART", "SWITCHBOARD_AMQP_URL", "SWITCHBOARD_SQS_ENDPOINT", "SWITCHBOARD_KAFKA_BROKERS":
					continue // never let this test restart a broker
				}
				cmd.Env = append(cmd.Env, kv)
			}
			// A broker in the environment is never touched; Redis too.
			cmd.Env = append(cmd.Env, "SWITCHBOARD_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/", "SWITCHBOARD_REDIS_URL=redis://127.0.0.1:6379")
			cmd.Env = append(cmd.Env, env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("brokers.sh still running after 2 minutes:\n%s", out.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("brokers.sh: %v, want exit 1:\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), addr) || !strings.Contains(out.String(), "does not answer") {
				t.Errorf("the message does not name the broker and the problem:\n%s", out.String())
			}
		})
	}
}
