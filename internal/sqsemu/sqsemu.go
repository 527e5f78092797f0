// Package sqsemu installs and runs the SNS+SQS emulator pinned in
// sqs/testdata/emulator (fauxqs, installed with npm, run with the
// machine's Node >= 20). Package sqstest gives it to tests; the CLI's
// `switchboard dev sqs` runs it for newcomers.
//
// The emulator keeps its queues and topics in memory only: a restart
// starts empty.
package sqsemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Region is the region clients of the emulator use.
const Region = "us-east-1"

// DummyCredentials are the static AWS credentials clients of the emulator
// use (it does not check them), as environment variables: the SQS adapter
// reads credentials through the default AWS chain.
var DummyCredentials = [][2]string{
	{"AWS_ACCESS_KEY_ID", "test"},
	{"AWS_SECRET_ACCESS_KEY", "test"},
	{"AWS_EC2_METADATA_DISABLED", "true"},
}

// Dir returns the directory of the pinned emulator: sqs/testdata/emulator
// in the source tree this package was built from, else (a binary built
// with -trimpath or moved) ./sqs/testdata/emulator under the working
// directory.
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if ok && filepath.IsAbs(file) {
		d := filepath.Join(filepath.Dir(file), "..", "..", "sqs", "testdata", "emulator")
		if _, err := os.Stat(filepath.Join(d, "package.json")); err == nil {
			return d
		}
	}
	return filepath.Join("sqs", "testdata", "emulator")
}

var installOnce sync.Once
var installErr error

// Install runs sqs/testdata/emulator/install.sh (npm ci of the pinned
// fauxqs) when node_modules is missing. It needs node >= 20 and npm.
func Install() error {
	installOnce.Do(func() {
		dir := Dir()
		if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
			installErr = fmt.Errorf("the emulator's directory %s is missing (run from a clone of the repository): %w", dir, err)
			return
		}
		if _, err := exec.LookPath("node"); err != nil {
			installErr = errors.New("node is not on PATH (needed for the fauxqs emulator; Debian: apt-get install nodejs npm)")
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
			installErr = fmt.Errorf("installing the emulator (%s): %v: %s", filepath.Join(dir, "install.sh"), err, out)
		}
	})
	return installErr
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

// Done is closed when the emulator process has exited.
func (e *Emulator) Done() <-chan struct{} { return e.done }

// Start starts fauxqs on 127.0.0.1:port (0: a free port), installing it
// first if needed, and waits until it answers. Its logs go to os.Stderr.
// On Linux the emulator is killed when the process that started it dies.
func Start(port int) (*Emulator, error) { return StartLogs(port, os.Stderr) }

// StartLogs is Start with the emulator's logs written to logs.
func StartLogs(port int, logs io.Writer) (*Emulator, error) {
	if err := Install(); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	cmd.Stderr = logs
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
		return nil, errors.New("the emulator exited at start (is the port in use?)")
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

// Stop ends the emulator process (SIGTERM, then SIGKILL after 5s) and
// waits for it.
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
