package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/bench/harness"
)

// Modes other than the comparison (see -mode).
var (
	mode         = flag.String("mode", "compare", "compare: the comparison tables; scale: the scale table (keys, subscriptions, body sizes, group members); soak: steady load for -soak, sampling the heap")
	soak         = flag.Duration("soak", 10*time.Minute, "with -mode soak: how long the steady load runs")
	soakRate     = flag.Int("soak-rate", 1000, "with -mode soak: messages published per second")
	soakRequests = flag.Int("soak-requests", 20, "with -mode soak: request/reply round trips per second")
	soakProfiles = flag.String("soak-profiles", "", "with -mode soak: directory for heap profiles of the first and last samples")
)

// endpoints starts or finds the brokers of the transports named, like
// the comparison does; stop stops what was started.
func endpoints(ctx context.Context, trs, amqpURL, kafkaBrokers, sqsEndpoint string) (ep harness.Endpoints, names []string, stop func()) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	for _, tr := range strings.Split(trs, ",") {
		switch tr = strings.TrimSpace(tr); tr {
		case "inmem":
		case "rabbitmq":
			if err := harness.RabbitReachable(ctx, amqpURL); err != nil {
				fmt.Fprintf(os.Stderr, "rabbitmq: skipped: %v\n", err)
				continue
			}
			ep.AMQP = amqpURL
		case "kafka":
			brokers, s, err := kafkaCluster(kafkaBrokers)
			if err != nil {
				fmt.Fprintf(os.Stderr, "kafka: skipped: %v\n", err)
				continue
			}
			stops = append(stops, s)
			ep.Kafka = brokers
		case "sqs":
			e, s, err := sqsEndpointOrEmulator(sqsEndpoint)
			if err != nil {
				fmt.Fprintf(os.Stderr, "sqs: skipped: %v\n", err)
				continue
			}
			stops = append(stops, s)
			ep.SQS = e
		case "":
			continue
		default:
			fmt.Fprintf(os.Stderr, "unknown transport %q (have: inmem, rabbitmq, kafka, sqs)\n", tr)
			os.Exit(2)
		}
		names = append(names, tr)
	}
	return ep, names, stop
}

// runMode runs -mode scale or soak and returns the exit code.
func runMode(ctx context.Context, rounds int, trs, amqpURL, kafkaBrokers, sqsEndpoint string) int {
	ep, names, stop := endpoints(ctx, trs, amqpURL, kafkaBrokers, sqsEndpoint)
	defer stop()
	start := time.Now()
	header := func() {
		fmt.Printf("Ran %s, %s, in %s.\n\n", harness.MachineLine(), time.Now().UTC().Format("2006-01-02 15:04 MST"), time.Since(start).Round(time.Second))
	}
	switch *mode {
	case "soak":
		code := 0
		o := harness.SoakOptions{Duration: *soak, Rate: *soakRate, Requests: *soakRequests, ProfileDir: *soakProfiles}
		for _, tr := range names {
			samples, err := harness.Soak(ctx, tr, ep, o, os.Stderr)
			if err != nil {
				fmt.Fprintf(os.Stderr, "soak %s: %v\n", tr, err)
				code = 1
			}
			harness.SoakMarkdown(os.Stdout, tr, o, samples)
		}
		header()
		return code
	case "scale":
		t := harness.ScaleTable(ctx, ep, names, rounds, os.Stderr)
		header()
		t.Markdown(os.Stdout)
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown -mode %q (have: compare, scale, soak)\n", *mode)
	return 2
}
