package kafka_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/switchboard-go/switchboard/internal/testenv"
	"github.com/switchboard-go/switchboard/kafka"
	"github.com/switchboard-go/switchboard/transport"
)

// The tests run against SWITCHBOARD_KAFKA_BROKERS when set, else against
// one in-process kfake cluster (github.com/twmb/franz-go/pkg/kfake) that
// they share; fault tests start clusters of their own with startKfake.

var shared struct {
	once    sync.Once
	cluster *kfake.Cluster
	brokers []string
	err     error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.cluster != nil {
		shared.cluster.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// envBrokers returns the brokers of SWITCHBOARD_KAFKA_BROKERS, if set.
func envBrokers() []string {
	v := strings.TrimSpace(os.Getenv("SWITCHBOARD_KAFKA_BROKERS"))
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// startKfake starts an in-process Kafka cluster with fast group timing.
func startKfake(opts ...kfake.Opt) (*kfake.Cluster, error) {
	base := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}
	return kfake.NewCluster(append(base, opts...)...)
}

// testBrokers returns the brokers the tests use, or stops the test through
// testenv.Missing.
func testBrokers(t testing.TB) []string {
	t.Helper()
	if b := envBrokers(); b != nil {
		return b
	}
	shared.once.Do(func() {
		shared.cluster, shared.err = startKfake()
		if shared.err == nil {
			shared.brokers = shared.cluster.ListenAddrs()
		}
	})
	if shared.err != nil {
		testenv.Missing(t, "kafka", "SWITCHBOARD_KAFKA_BROKERS is not set and kfake did not start: %v", shared.err)
	}
	return shared.brokers
}

// fastOptions is the URL query the tests use: fast group joins, leaves and
// rebalances. A real cluster refuses session timeouts under its
// group.min.session.timeout.ms (6s by default).
func fastOptions() string {
	session := "1s"
	if envBrokers() != nil {
		session = "6s"
	}
	return "heartbeat_interval=100ms&session_timeout=" + session +
		"&rebalance_timeout=3s&max_wait=200ms&metadata_ttl=250ms&drain_timeout=500ms&join_backoff=100ms"
}

func testURL(brokers []string) string {
	return "kafka://" + strings.Join(brokers, ",") + "?" + fastOptions()
}

// openT opens a transport to the test cluster, closed at the end of the test.
func openT(t testing.TB) transport.Transport {
	t.Helper()
	return openAt(t, testBrokers(t))
}

func openAt(t testing.TB, brokers []string) transport.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := transport.Open(ctx, testURL(brokers))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// unique returns a name unique to this test run.
func unique(prefix string) string {
	return fmt.Sprintf("sbt-%s-%d-%s", prefix, time.Now().UnixNano()%1e9, randSuffix())
}

var seq struct {
	sync.Mutex
	n int
}

func randSuffix() string {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return fmt.Sprintf("%d", seq.n)
}

var _ = kafka.Scheme

// teardown deletes the Kafka topics and consumer groups of every
// destination whose Switchboard name starts with prefix.
func teardown(ctx context.Context, tr transport.Transport, prefix string) error {
	var c *kafkago.Client
	if !tr.As(&c) {
		return fmt.Errorf("not a kafka transport")
	}
	owned := func(kafkaName string) bool {
		for _, ns := range []string{"topic.", "queue.", "reply.", "topic-h.", "queue-h."} {
			if rest, ok := strings.CutPrefix(kafkaName, ns); ok {
				return strings.HasPrefix(rest, prefix)
			}
		}
		return false
	}
	md, err := c.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		return err
	}
	var topics []string
	for _, tp := range md.Topics {
		if owned(tp.Name) {
			topics = append(topics, tp.Name)
		}
	}
	lg, err := c.ListGroups(ctx, &kafkago.ListGroupsRequest{})
	if err != nil {
		return err
	}
	var groups []string
	for _, g := range lg.Groups {
		topic, _, _ := strings.Cut(g.GroupID, ":")
		if owned(topic) {
			groups = append(groups, g.GroupID)
		}
	}
	if len(groups) > 0 {
		if _, err := c.DeleteGroups(ctx, &kafkago.DeleteGroupsRequest{GroupIDs: groups}); err != nil {
			return err
		}
	}
	if len(topics) > 0 {
		if _, err := c.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: topics}); err != nil {
			return err
		}
	}
	return nil
}
