package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/go-connections/nat"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/modules/kafka"
	"github.com/testcontainers/testcontainers-go/modules/localstack"
	"github.com/testcontainers/testcontainers-go/modules/rabbitmq"
)

// Labels on every container sbbrokers starts, so that `down` finds them
// (testcontainers-go reserves the org.testcontainers prefix).
const (
	labelBase   = "dev.switchboard-go.sbbrokers"
	labelBroker = labelBase + ".broker"
	labelRun    = labelBase + ".run"
	// Set by testcontainers-go on the containers of one session and on
	// that session's Ryuk.
	labelSession = "org.testcontainers.sessionId"
	labelRyuk    = "org.testcontainers.ryuk"
)

// The images, pinned; each can be overridden by an environment variable.
var images = map[string]struct{ env, def string }{
	"kafka":      {"SBBROKERS_KAFKA_IMAGE", "confluentinc/confluent-local:7.5.0"},
	"rabbitmq":   {"SBBROKERS_RABBITMQ_IMAGE", "rabbitmq:3.12.11-management-alpine"},
	"localstack": {"SBBROKERS_LOCALSTACK_IMAGE", "localstack/localstack:3.8.1"},
}

// brokerOrder is the order brokers start in and exports are printed in.
var brokerOrder = []string{"kafka", "rabbitmq", "localstack"}

// aliases maps accepted names to broker names.
var aliases = map[string]string{
	"kafka": "kafka", "rabbitmq": "rabbitmq", "amqp": "rabbitmq",
	"localstack": "localstack", "sqs": "localstack",
}

func image(broker string) string {
	if v := os.Getenv(images[broker].env); v != "" {
		return v
	}
	return images[broker].def
}

// parseBrokers turns command-line names into brokers in brokerOrder, all
// three when none is named.
func parseBrokers(args []string) ([]string, error) {
	want := map[string]bool{}
	for _, a := range args {
		b, ok := aliases[strings.ToLower(a)]
		if !ok {
			return nil, fmt.Errorf("unknown broker %q (want kafka, rabbitmq or localstack)", a)
		}
		want[b] = true
	}
	var out []string
	for _, b := range brokerOrder {
		if len(args) == 0 || want[b] {
			out = append(out, b)
		}
	}
	return out, nil
}

// started is one running broker and the line that exports its endpoint.
type started struct {
	broker string
	ctr    testcontainers.Container
	export string // NAME=value
}

// startBroker starts one broker, waits until it is ready (the module's wait
// strategy), and returns its endpoint. It recovers the panics some
// testcontainers-go paths raise when Docker disappears.
func startBroker(ctx context.Context, broker, run string) (s started, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: testcontainers-go panicked: %v", errNoDocker, broker, r)
		}
	}()
	s.broker = broker
	labels := testcontainers.WithLabels(map[string]string{
		labelBase: "true", labelBroker: broker, labelRun: run,
	})
	img := image(broker)
	switch broker {
	case "kafka":
		c, err := kafka.Run(ctx, img, kafka.WithClusterID("switchboard"), labels)
		if c != nil {
			s.ctr = c
		}
		if err != nil {
			return s, err
		}
		brokers, err := c.Brokers(ctx)
		if err != nil {
			return s, fmt.Errorf("kafka brokers: %w", err)
		}
		s.export = "SWITCHBOARD_KAFKA_BROKERS=" + strings.Join(brokers, ",")
	case "rabbitmq":
		c, err := rabbitmq.Run(ctx, img, labels)
		if c != nil {
			s.ctr = c
		}
		if err != nil {
			return s, err
		}
		u, err := c.AmqpURL(ctx)
		if err != nil {
			return s, fmt.Errorf("rabbitmq url: %w", err)
		}
		s.export = "SWITCHBOARD_AMQP_URL=" + u
	case "localstack":
		c, err := localstack.Run(ctx, img, labels,
			testcontainers.WithEnv(map[string]string{"SERVICES": "sqs,sns"}))
		if c != nil {
			s.ctr = c
		}
		if err != nil {
			return s, err
		}
		u, err := c.PortEndpoint(ctx, nat.Port("4566/tcp"), "http")
		if err != nil {
			return s, fmt.Errorf("localstack endpoint: %w", err)
		}
		s.export = "SWITCHBOARD_SQS_ENDPOINT=" + u
	default:
		return s, fmt.Errorf("unknown broker %q", broker)
	}
	return s, nil
}

// up starts brokers in parallel. On any failure it removes those that did
// start and returns the errors joined; on success it returns the exports in
// brokerOrder.
func up(ctx context.Context, brokers []string, run string) ([]string, error) {
	results := make([]started, len(brokers))
	errs := make([]error, len(brokers))
	var wg sync.WaitGroup
	for i, b := range brokers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			logf("starting %s (%s)", b, image(b))
			results[i], errs[i] = startBroker(ctx, b, run)
			if errs[i] == nil {
				logf("%s is ready: %s", b, results[i].export)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, r := range results {
			if r.ctr != nil {
				if terr := testcontainers.TerminateContainer(r.ctr); terr != nil {
					logf("removing %s: %v", r.broker, terr)
				}
			}
		}
		return nil, err
	}
	exports := make([]string, len(results))
	for i, r := range results {
		exports[i] = r.export
	}
	return exports, nil
}

// down removes the containers sbbrokers started (those of run only, when
// run is set), then the Ryuk containers of their sessions once nothing else
// of those sessions is left. It returns how many brokers it removed.
func down(ctx context.Context, host, run string) (int, error) {
	cli, err := newDockerClient(host)
	if err != nil {
		return 0, err
	}
	defer cli.Close()
	f := filters.NewArgs(filters.Arg("label", labelBase+"=true"))
	if run != "" {
		f.Add("label", labelRun+"="+run)
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return 0, fmt.Errorf("list containers: %w", err)
	}
	sessions := map[string]bool{}
	var errs []error
	n := 0
	for _, c := range list {
		if s := c.Labels[labelSession]; s != "" {
			sessions[s] = true
		}
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			errs = append(errs, fmt.Errorf("remove %s (%s): %w", c.Labels[labelBroker], shortID(c.ID), err))
			continue
		}
		logf("removed %s (%s)", c.Labels[labelBroker], shortID(c.ID))
		n++
	}
	for s := range sessions {
		all, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", labelSession+"="+s))})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var ryuks []string
		others := 0
		for _, c := range all {
			if c.Labels[labelRyuk] == "true" {
				ryuks = append(ryuks, c.ID)
			} else {
				others++
			}
		}
		if others > 0 {
			continue // Ryuk still guards something: leave it to its timeout
		}
		for _, id := range ryuks {
			if err := cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil {
				errs = append(errs, fmt.Errorf("remove ryuk %s: %w", shortID(id), err))
			}
		}
	}
	return n, errors.Join(errs...)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
