package kafka_test

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

	"github.com/google/uuid"

	"github.com/switchboard-go/switchboard/messaging"
)

const (
	crashChildEnv = "SWITCHBOARD_CRASH_CHILD"
	crashURLEnv   = "SWITCHBOARD_CRASH_URL"
	crashTopicEnv = "SWITCHBOARD_CRASH_TOPIC"
)

// TestCrashChildHelper is the consumer process of the crash tests
// below; it does nothing unless started by them.
func TestCrashChildHelper(t *testing.T) {
	mode := os.Getenv(crashChildEnv)
	if mode == "" {
		return
	}
	ctx := context.Background()
	c, err := messaging.Open(ctx, os.Getenv(crashURLEnv))
	if err != nil {
		fmt.Println("open error", err)
		os.Exit(3)
	}
	policy := messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 3, InitialBackoff: 5 * time.Second, MaxBackoff: 5 * time.Second})
	if mode == "retry2" {
		policy = messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 5, InitialBackoff: 200 * time.Millisecond, MaxBackoff: 10 * time.Second, Multiplier: 50})
	}
	_, err = c.Subscribe(ctx, os.Getenv(crashTopicEnv), "g", func(ctx context.Context, m *messaging.Message) error {
		body := string(m.Body)
		fmt.Printf("call %s %d\n", body, m.Attempt)
		switch body {
		case "fail":
			return errors.New("transient")
		case "crash":
			if mode != "nocrash" {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		case "slow":
			time.Sleep(3 * time.Second)
		}
		fmt.Printf("ok %s\n", body)
		return nil
	}, policy)
	if err != nil {
		fmt.Println("subscribe error", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	time.Sleep(60 * time.Second)
	os.Exit(0)
}

type child struct {
	cmd   *exec.Cmd
	lines chan string
}

func startChild(t *testing.T, ctx context.Context, mode, url, topic string) *child {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChildHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+mode, crashURLEnv+"="+url, crashTopicEnv+"="+topic)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch.lines <- sc.Text()
		}
		close(ch.lines)
	}()
	return ch
}

// next returns the child's next line, or "" when it exits or d passes.
func (c *child) next(d time.Duration) string {
	select {
	case l, ok := <-c.lines:
		if !ok {
			return ""
		}
		return l
	case <-time.After(d):
		return ""
	}
}

func (c *child) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

func crashURL(t *testing.T) string {
	return testURL(testBrokers(t)) + "&partitions=1"
}

// A message that crashes its consumer process (SIGKILL) while an earlier
// message of the same partition (another key, a slow handler) is still in
// flight, with MaxAttempts 3 and a supervisor restarting the process: the
// crashing message must be dead-lettered after at most 3 deliveries
// (issue 11 input 3, SEMANTICS R75: every message handed out is counted),
// and the slow message, which never failed, must be handled, not
// dead-lettered (a crash suspect is handed out alone, attempts.go).
func TestCrashLoopBehindInFlight(t *testing.T) {
	crashLoop(t, &messaging.Message{Key: "a", Body: []byte("slow")}, &messaging.Message{Key: "b", Body: []byte("crash")})
}

// The same with the crashing message alone on its partition.
func TestCrashLoopAlone(t *testing.T) {
	crashLoop(t, &messaging.Message{Key: "b", Body: []byte("crash")})
}

func crashLoop(t *testing.T, msgs ...*messaging.Message) {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	u, topic := crashURL(t), "crash-loop-"+uuid.NewString()[:8]
	pub, err := messaging.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var mu sync.Mutex
	var dead []string
	var calls []string
	first, okSlow := true, false
	for run := 1; run <= 10; run++ {
		ch := startChild(t, ctx, "crash", u, topic)
		if l := ch.next(30 * time.Second); l != "ready" {
			ch.kill()
			t.Fatalf("run %d: %q", run, l)
		}
		if first {
			first = false
			if _, err := pub.Listen(ctx, messaging.DeadLetterQueue(topic, "g"), func(_ context.Context, m *messaging.Message) error {
				mu.Lock()
				dead = append(dead, string(m.Body))
				mu.Unlock()
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := pub.Publish(ctx, topic, msgs...); err != nil {
				t.Fatal(err)
			}
		}
		crashed := false
		for {
			l := ch.next(8 * time.Second)
			if l == "" {
				break
			}
			calls = append(calls, fmt.Sprintf("run %d: %s", run, l))
			if l == "ok slow" {
				okSlow = true
			}
		}
		exited := make(chan struct{})
		go func() { ch.cmd.Wait(); close(exited) }()
		select {
		case <-exited:
			crashed = true
		case <-time.After(500 * time.Millisecond):
			ch.cmd.Process.Kill()
			<-exited
		}
		if !crashed && (okSlow || len(msgs) == 1) {
			break
		}
	}
	// A last consumer that does not crash: whatever is still in the
	// group reaches it.
	last := startChild(t, ctx, "nocrash", u, topic)
	for {
		l := last.next(8 * time.Second)
		if l == "" {
			break
		}
		calls = append(calls, "last run: "+l)
	}
	last.kill()
	mu.Lock()
	defer mu.Unlock()
	handledSlow, deadSlow := false, false
	for _, c := range calls {
		if strings.HasSuffix(c, ": ok slow") {
			handledSlow = true
		}
	}
	for _, d := range dead {
		deadSlow = deadSlow || d == "slow"
	}
	for _, m := range msgs {
		if string(m.Body) == "slow" && !handledSlow && !deadSlow {
			t.Errorf("LOST: the slow message was neither handled to the end nor dead-lettered")
		}
	}
	nCrash := 0
	for _, c := range calls {
		if strings.HasSuffix(c, ": call crash "+c[len(c)-1:]) {
			nCrash++
		}
	}
	t.Logf("handler calls: %v; dead letters: %v", calls, dead)
	if nCrash > 3 {
		t.Errorf("the crashing message was handled %d times, want at most MaxAttempts=3", nCrash)
	}
	for _, d := range dead {
		if d == "slow" {
			t.Errorf("the slow message, which never failed, was dead-lettered (its partition's count was raised by another message's crashes)")
		}
	}
}
