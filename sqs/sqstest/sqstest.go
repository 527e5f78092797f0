// Package sqstest gives tests an SQS/SNS endpoint: the one in
// SWITCHBOARD_SQS_ENDPOINT when it is set, else the fauxqs emulator pinned
// in sqs/testdata/emulator (installed with npm on first use, run with the
// machine's Node >= 20). Only tests should import it.
package sqstest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
)

// EnvEndpoint names the environment variable with an SQS/SNS endpoint to
// use instead of the emulator.
const EnvEndpoint = "SWITCHBOARD_SQS_ENDPOINT"

// Region is the region the tests use.
const Region = "us-east-1"

// SetDummyCredentials sets static AWS credentials in the environment when
// none are set: the emulator does not check them, and the adapter reads
// credentials through the default AWS chain.
func SetDummyCredentials() {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
}

// URL returns an sqs:// URL for the test: SWITCHBOARD_SQS_ENDPOINT, or a
// new emulator stopped when the test ends. When neither can be had, it
// reports the broker missing (testenv.Missing).
func URL(t testing.TB) string {
	t.Helper()
	SetDummyCredentials()
	ep := os.Getenv(EnvEndpoint)
	if ep == "" {
		e, err := Start(0)
		if err != nil {
			testenv.Missing(t, "sqs", "%s is unset and the fauxqs emulator could not start: %v", EnvEndpoint, err)
		}
		t.Cleanup(e.Stop)
		ep = e.Endpoint()
	}
	return "sqs://?region=" + Region + "&endpoint=" + url.QueryEscape(ep) + "&wait=1s"
}

// Emulator is a running fauxqs process.
type Emulator struct {
	// Port is the TCP port it listens on.
	Port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Endpoint returns the emulator's URL, such as http://127.0.0.1:4566.
func (e *Emulator) Endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", e.Port) }

var installOnce sync.Once
var installErr error

// emulatorDir is sqs/testdata/emulator, found from this file's path, so
// that tests of any package can start the emulator.
func emulatorDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "emulator")
}

// Install runs sqs/testdata/emulator/install.sh (npm ci of the pinned
// fauxqs) when node_modules is missing.
func Install() error {
	installOnce.Do(func() {
		dir := emulatorDir()
		if _, err := exec.LookPath("node"); err != nil {
			installErr = errors.New("node is not on PATH (needed for the fauxqs emulator)")
			return
		}
		if out, err := exec.Command("node", "-e", "process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)").CombinedOutput(); err != nil {
			v, _ := exec.Command("node", "--version").Output()
			installErr = fmt.Errorf("fauxqs 1.9.2 needs Node >= 20; node is %s: %v %s", strings.TrimSpace(string(v)), err, out)
			return
		}
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "fauxqs", "package.json")); err == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "sh", filepath.Join(dir, "install.sh")).CombinedOutput()
		if err != nil {
			installErr = fmt.Errorf("installing the emulator (testdata/emulator/install.sh): %v: %s", err, out)
		}
	})
	return installErr
}

// Start starts fauxqs on 127.0.0.1:port (0: a free port), installing it
// first if needed, and waits until it answers.
func Start(port int) (*Emulator, error) {
	if err := Install(); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = emulatorDir()
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	cmd.Stderr = os.Stderr
	configureCmd(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the emulator: %w", err)
	}
	e := &Emulator{cmd: cmd, done: make(chan struct{})}
	got := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var p int
			if _, err := fmt.Sscanf(sc.Text(), "LISTENING %d", &p); err == nil {
				got <- p
			}
		}
		cmd.Wait()
		close(e.done)
	}()
	select {
	case e.Port = <-got:
	case <-e.done:
		return nil, errors.New("the emulator exited at start")
	case <-time.After(30 * time.Second):
		e.Stop()
		return nil, errors.New("the emulator did not start within 30s")
	}
	// Wait until it answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.Endpoint() + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("the emulator does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	http.DefaultClient.CloseIdleConnections()
	return e, nil
}

// Stop ends the emulator process and waits for it.
func (e *Emulator) Stop() {
	if e.cmd.Process == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
}
