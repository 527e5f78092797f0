// Package kafkatest gives tests a Kafka cluster to talk to: the one in
// SWITCHBOARD_KAFKA_BROKERS when it is set, else a new in-process cluster
// (github.com/twmb/franz-go/pkg/kfake, which speaks the real wire
// protocol) closed when the test ends. Only tests should import it.
package kafkatest

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchboard-go/switchboard/internal/testenv"
)

// EnvBrokers is the environment variable naming a real cluster's brokers,
// comma-separated.
const EnvBrokers = "SWITCHBOARD_KAFKA_BROKERS"

// URL returns a kafka:// URL for the test's cluster, with group timings
// short enough for tests (6s sessions on a real cluster, which refuses
// shorter ones by default; 1s on kfake).
func URL(t testing.TB) string {
	t.Helper()
	if v := strings.TrimSpace(os.Getenv(EnvBrokers)); v != "" {
		return "kafka://" + v + "?" + fastOptions("6s")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
	if err != nil {
		testenv.Missing(t, "kafka", "%s is unset and kfake did not start: %v", EnvBrokers, err)
	}
	t.Cleanup(c.Close)
	return "kafka://" + strings.Join(c.ListenAddrs(), ",") + "?" + fastOptions("1s")
}

func fastOptions(session string) string {
	return "heartbeat_interval=100ms&session_timeout=" + session +
		"&rebalance_timeout=3s&max_wait=200ms&metadata_ttl=250ms&drain_timeout=500ms&join_backoff=100ms"
}
