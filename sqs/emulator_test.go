package sqs_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/internal/testenv"
	sbsqs "github.com/switchboard-go/switchboard/sqs"
	"github.com/switchboard-go/switchboard/transport"
)

// The emulator: SWITCHBOARD_SQS_ENDPOINT when set; else the pinned
// fauxqs (testdata/emulator) started by TestMain on a free port.
var (
	endpoint    string
	endpointErr string
	shared      *emulator
)

const region = "us-east-1"

func TestMain(m *testing.M) {
	// Dummy static credentials for the emulator (it does not check them);
	// the opener reads them through the default AWS chain.
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	if ep := os.Getenv("SWITCHBOARD_SQS_ENDPOINT"); ep != "" {
		endpoint = ep
	} else if e, err := startEmulator(0); err != nil {
		endpointErr = err.Error()
	} else {
		shared = e
		endpoint = e.endpoint()
	}
	code := m.Run()
	if shared != nil {
		shared.stop()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// emulator is a fauxqs process.
type emulator struct {
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

func (e *emulator) endpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", e.port) }

// configureEmulatorCmd adjusts the emulator's command (Linux: dies with
// the test binary).
var configureEmulatorCmd = func(*exec.Cmd) {}

var installOnce sync.Once
var installErr error

func emulatorDir() string {
	d, _ := filepath.Abs(filepath.Join("testdata", "emulator"))
	return d
}

// installEmulator runs testdata/emulator/install.sh (npm ci of the pinned
// fauxqs) when node_modules is missing.
func installEmulator() error {
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

// startEmulator starts fauxqs on 127.0.0.1:port (0: a free port) and
// waits until it answers.
func startEmulator(port int) (*emulator, error) {
	if err := installEmulator(); err != nil {
		return nil, err
	}
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = emulatorDir()
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	cmd.Stderr = os.Stderr
	configureEmulatorCmd(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the emulator: %w", err)
	}
	e := &emulator{cmd: cmd, done: make(chan struct{})}
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
	case e.port = <-got:
	case <-e.done:
		return nil, errors.New("the emulator exited at start")
	case <-time.After(30 * time.Second):
		e.stop()
		return nil, errors.New("the emulator did not start within 30s")
	}
	// Wait until it answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(e.endpoint() + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			e.stop()
			return nil, fmt.Errorf("the emulator does not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	http.DefaultClient.CloseIdleConnections()
	return e, nil
}

// stop ends the emulator process and waits for it.
func (e *emulator) stop() {
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

// needEndpoint returns the endpoint or reports the broker missing.
func needEndpoint(t testing.TB) string {
	t.Helper()
	if endpoint == "" {
		testenv.Missing(t, "sqs", "no SWITCHBOARD_SQS_ENDPOINT and the fauxqs emulator could not start: %s", endpointErr)
	}
	return endpoint
}

// openURL opens a transport on the test endpoint through the registry.
func openURL(t testing.TB, ep string, extra string) transport.Transport {
	t.Helper()
	u := "sqs://?region=" + region + "&endpoint=" + url.QueryEscape(ep) + "&wait=1s"
	if extra != "" {
		u += "&" + extra
	}
	tr, err := transport.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("open %s: %v", u, err)
	}
	return tr
}

// open returns a transport on the test endpoint, closed at test end.
func open(t testing.TB, extra string) transport.Transport {
	t.Helper()
	tr := openURL(t, needEndpoint(t), extra)
	t.Cleanup(func() { tr.Close() })
	return tr
}

// rawConfig is an aws.Config for the endpoint with dummy credentials.
func rawConfig(ep string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(ep),
	}
}

// uniq returns a unique name prefix and deletes what was made under it
// when the test ends.
func uniq(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "sbt-" + hex.EncodeToString(b[:]) + "-"
	if ep := endpoint; ep != "" {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := deletePrefix(ctx, ep, prefix); err != nil {
				t.Logf("teardown %s: %v", prefix, err)
			}
		})
	}
	return prefix
}

// deletePrefix deletes the queues, topics and subscriptions whose
// Switchboard names start with prefix.
func deletePrefix(ctx context.Context, ep, prefix string) error {
	cfg := rawConfig(ep)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	cfg.HTTPClient = &http.Client{Transport: tr}
	sq, sn := sqs.NewFromConfig(cfg), sns.NewFromConfig(cfg)
	// Prefixes map to prefixes (escaping is per character); ".fifo" is
	// only a suffix.
	p := sbsqs.QueueName(prefix, false)
	var errs []error
	var token *string
	for {
		out, err := sq.ListQueues(ctx, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(p), NextToken: token, MaxResults: aws.Int32(1000)})
		if err != nil {
			return err
		}
		for _, u := range out.QueueUrls {
			if _, err := sq.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(u)}); err != nil {
				errs = append(errs, err)
			}
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	token = nil
	for {
		out, err := sn.ListTopics(ctx, &sns.ListTopicsInput{NextToken: token})
		if err != nil {
			return err
		}
		for _, tp := range out.Topics {
			arn := aws.ToString(tp.TopicArn)
			name := arn[strings.LastIndex(arn, ":")+1:]
			if !strings.HasPrefix(name, p) {
				continue
			}
			subs, err := sn.ListSubscriptionsByTopic(ctx, &sns.ListSubscriptionsByTopicInput{TopicArn: aws.String(arn)})
			if err == nil {
				for _, s := range subs.Subscriptions {
					_, _ = sn.Unsubscribe(ctx, &sns.UnsubscribeInput{SubscriptionArn: s.SubscriptionArn})
				}
			}
			if _, err := sn.DeleteTopic(ctx, &sns.DeleteTopicInput{TopicArn: aws.String(arn)}); err != nil {
				errs = append(errs, err)
			}
		}
		if out.NextToken == nil {
			break
		}
		token = out.NextToken
	}
	return errors.Join(errs...)
}
