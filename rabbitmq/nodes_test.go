package rabbitmq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/internal/testpki"
)

// Extra RabbitMQ nodes for the cluster and TLS tests, started and stopped
// by scripts/rabbitmq-nodes.sh under a base directory of their own (own
// Erlang cookie, data and log directories, ports). The machine's own
// RabbitMQ is never touched: the script's rabbitmqctl calls carry a cookie
// only our nodes have, and name our nodes only.

// Ports of the test nodes: AMQP 5681-5683, TLS 5684 (on node 3),
// distribution 25681-25683.
const (
	nodeAMQPPort = 5681
	nodeDistPort = 25681
	nodeTLSPort  = 5684
)

// nodeSet is a set of test nodes started by the script.
type nodeSet struct {
	script string
	base   string
	names  []string
	ports  []int
}

// nodesScript returns the path of scripts/rabbitmq-nodes.sh, or stops the
// test through testenv.Missing when rabbitmq-server is not installed.
func nodesScript(t testing.TB) string {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "scripts", "rabbitmq-nodes.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("node script: %v", err)
	}
	if _, err := os.Stat("/usr/lib/rabbitmq/bin/rabbitmq-server"); err != nil && os.Getenv("RABBITMQ_BIN") == "" {
		testenv.Missing(t, "rabbitmq", "rabbitmq-server is not installed (scripts/brokers.sh installs it); the cluster and TLS tests start nodes of their own")
	}
	return script
}

// run runs the script with args, bounded by d.
func (ns *nodeSet) run(d time.Duration, args ...string) error {
	_, err := ns.output(d, args...)
	return err
}

// output runs the script with args, bounded by d, and returns its
// standard output.
func (ns *nodeSet) output(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{ns.script}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("rabbitmq-nodes.sh %v: %w\n%s%s", args, err, out.Bytes(), errOut.Bytes())
	}
	return out.String(), nil
}

// queueMembers returns the nodes holding a member (replica) of a quorum
// queue, asking node i.
func (ns *nodeSet) queueMembers(i int, queue string) ([]string, error) {
	out, err := ns.output(time.Minute, "ctl", ns.base, ns.names[i], "list_queues", "name", "members", "--formatter", "json")
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Name    string          `json:"name"`
		Members json.RawMessage `json:"members"` // "" for a classic queue
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return nil, fmt.Errorf("list_queues output %q: %w", out, err)
	}
	for _, r := range rows {
		if r.Name == queue {
			var members []string
			if err := json.Unmarshal(r.Members, &members); err != nil {
				return nil, fmt.Errorf("queue %q: members %s: not a quorum queue? %w", queue, r.Members, err)
			}
			sort.Strings(members)
			return members, nil
		}
	}
	return nil, fmt.Errorf("queue %q not listed", queue)
}

// startCluster starts n nodes sbtest1@localhost.. on ports
// nodeAMQPPort.., joins nodes 2..n to node 1 with join_cluster, and stops
// them all when the test ends (and, through the script's watchdog, when
// the test binary dies). extra[i], when not empty, is a file of extra
// rabbitmq.conf lines for node i.
func startCluster(t *testing.T, n int, extra map[int]string) *nodeSet {
	t.Helper()
	ns := &nodeSet{script: nodesScript(t), base: filepath.Join(os.TempDir(), "switchboard-rabbitmq-nodes")}
	for i := range n {
		ns.names = append(ns.names, fmt.Sprintf("sbtest%d@localhost", i+1))
		ns.ports = append(ns.ports, nodeAMQPPort+i)
	}
	for _, p := range append(append([]int(nil), ns.ports...), nodeTLSPort) {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), 200*time.Millisecond); err == nil {
			_ = c.Close()
			// A node of an earlier run that died: the script stops it
			// by name (only nodes with our cookie answer it).
			t.Logf("port %d is in use; stopping test nodes left in %s", p, ns.base)
			_ = ns.run(2*time.Minute, "stop-all", ns.base)
			break
		}
	}
	t.Cleanup(func() {
		if err := ns.run(3*time.Minute, "stop-all", ns.base); err != nil {
			t.Errorf("stopping test nodes: %v", err)
		}
	})
	if err := ns.run(10*time.Second, "watch", ns.base, strconv.Itoa(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"start", ns.base, ns.names[i], strconv.Itoa(ns.ports[i]), strconv.Itoa(nodeDistPort + i)}
			if extra[i] != "" {
				args = append(args, extra[i])
			}
			errs[i] = ns.run(3*time.Minute, args...)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("starting test nodes: %v", err)
	}
	for i := 1; i < n; i++ {
		if err := ns.run(3*time.Minute, "join", ns.base, ns.names[i], ns.names[0]); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d-node cluster %v started and joined in %v", n, ns.names, time.Since(start).Round(100*time.Millisecond))
	return ns
}

// stop stops node i by its name.
func (ns *nodeSet) stop(i int) error { return ns.run(3*time.Minute, "stop", ns.base, ns.names[i]) }

// restart starts node i again, with its data.
func (ns *nodeSet) restart(i int) error {
	return ns.run(3*time.Minute, "restart", ns.base, ns.names[i])
}

// url returns the URL naming every node's AMQP port.
func (ns *nodeSet) url(params string) string {
	u := "amqp://guest:guest@"
	for i, p := range ns.ports {
		if i > 0 {
			u += ","
		}
		u += "127.0.0.1:" + strconv.Itoa(p)
	}
	u += "/"
	if params != "" {
		u += "?" + params
	}
	return u
}

// tlsConf returns rabbitmq.conf lines for a TLS listener on port with
// p's server certificate.
func tlsConf(t *testing.T, p *testpki.PKI, port int) string {
	t.Helper()
	f := filepath.Join(filepath.Dir(p.CAFile), "tls.conf")
	conf := fmt.Sprintf("listeners.ssl.default = 127.0.0.1:%d\n"+
		"ssl_options.cacertfile = %s\nssl_options.certfile = %s\nssl_options.keyfile = %s\n"+
		"ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n",
		port, p.CAFile, p.CertFile, p.KeyFile)
	if err := os.WriteFile(f, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
