// Command compare runs Switchboard, the raw broker clients and Watermill
// through the same scenarios, round after round in one process, and
// prints the ratio tables (Markdown) of BENCHMARKS.md.
//
//	cd bench && go run ./cmd/compare                 # everything reachable, 5 rounds
//	go run ./cmd/compare -transports inmem -rounds 3
//	go run ./cmd/compare -only 'rabbitmq/pubsub/switchboard' -rounds 1 -cpuprofile cpu.out
//
// -benchout writes every measured run in the Go benchmark format, for
// `go tool benchstat`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/bench/harness"
)

func main() {
	rounds := flag.Int("rounds", 5, "rounds; every case runs once per round")
	trs := flag.String("transports", "inmem,rabbitmq,kafka,sqs", "comma-separated transports")
	scale := flag.Float64("scale", 1, "multiplies the message count of every case")
	only := flag.String("only", "", "regexp: run only the cases whose transport/pattern/impl matches")
	amqpURL := flag.String("amqp", envOr("SWITCHBOARD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ URL")
	benchOut := flag.String("benchout", "", "file to write Go benchmark lines to (for benchstat)")
	cpuProf := flag.String("cpuprofile", "", "write a CPU profile of the measured runs")
	memProf := flag.String("memprofile", "", "write an allocation profile (every allocation sampled)")
	kafkaBrokers := flag.String("kafka", os.Getenv("SWITCHBOARD_KAFKA_BROKERS"), "Kafka brokers (comma-separated); empty: a kfake cluster in a child process")
	sqsEndpoint := flag.String("sqs", os.Getenv("SWITCHBOARD_SQS_ENDPOINT"), "SQS endpoint; empty: the fauxqs emulator (sqs/sqstest)")
	flag.Parse()
	if os.Getenv(kfakeChild) != "" {
		serveKfake()
		return
	}
	if *mode != "compare" {
		os.Exit(runMode(context.Background(), *rounds, *trs, *amqpURL, *kafkaBrokers, *sqsEndpoint))
	}

	var re *regexp.Regexp
	if *only != "" {
		re = regexp.MustCompile(*only)
	}
	ctx := context.Background()
	var cases []harness.Case
	for _, tr := range strings.Split(*trs, ",") {
		switch strings.TrimSpace(tr) {
		case "inmem":
			cases = append(cases, harness.InMem(*scale)...)
		case "rabbitmq":
			if err := harness.RabbitReachable(ctx, *amqpURL); err != nil {
				fmt.Fprintf(os.Stderr, "rabbitmq: skipped: %v\n", err)
				continue
			}
			rc, cleanup := harness.RabbitMQ(*amqpURL, *scale)
			defer cleanup()
			cases = append(cases, rc...)
		case "kafka":
			brokers, stop, err := kafkaCluster(*kafkaBrokers)
			if err != nil {
				fmt.Fprintf(os.Stderr, "kafka: skipped: %v\n", err)
				continue
			}
			defer stop()
			cases = append(cases, harness.Kafka(brokers, *scale)...)
		case "sqs":
			ep, stop, err := sqsEndpointOrEmulator(*sqsEndpoint)
			if err != nil {
				fmt.Fprintf(os.Stderr, "sqs: skipped: %v\n", err)
				continue
			}
			defer stop()
			cases = append(cases, harness.SQS(ep, *scale)...)
		case "":
		default:
			fmt.Fprintf(os.Stderr, "unknown transport %q (have: inmem, rabbitmq, kafka, sqs)\n", tr)
			os.Exit(2)
		}
	}
	if re != nil {
		var kept []harness.Case
		for _, c := range cases {
			if re.MatchString(c.Name()) {
				kept = append(kept, c)
			}
		}
		cases = kept
	}
	if len(cases) == 0 {
		fmt.Fprintln(os.Stderr, "no cases to run")
		os.Exit(1)
	}
	if *memProf != "" {
		runtime.MemProfileRate = 1
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	var bench *os.File
	if *benchOut != "" {
		f, err := os.Create(*benchOut)
		if err != nil {
			fatal(err)
		}
		bench = f
		defer f.Close()
		fmt.Fprintf(f, "goos: %s\ngoarch: %s\npkg: github.com/switchboard-go/switchboard/bench\ncpu: %d cores (GOMAXPROCS %d)\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	}

	start := time.Now()
	rep := &harness.Report{}
	for round := range *rounds {
		// Run each (transport, pattern) group's implementations next to each
		// other, in an order that rotates every round, so that drift on the
		// shared machine hits every implementation alike.
		var results []harness.Result
		for i := 0; i < len(cases); {
			j := i
			for j < len(cases) && cases[j].Transport == cases[i].Transport && cases[j].Pattern == cases[i].Pattern {
				j++
			}
			group := cases[i:j]
			for k := range group {
				c := group[(k+round)%len(group)]
				r := harness.Run(ctx, c)
				results = append(results, r)
				status := fmt.Sprintf("%8.0f msgs/s  %6.1f allocs/msg", r.MsgsPerSec, r.AllocsPerOp)
				if r.P50 > 0 {
					status += fmt.Sprintf("  p50 %v p99 %v", r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
				}
				if r.Err != nil {
					status = "ERROR " + r.Err.Error()
				}
				fmt.Fprintf(os.Stderr, "round %d  %-34s %s\n", round+1, c.Name(), status)
				if bench != nil {
					if l := harness.BenchLine(r); l != "" {
						fmt.Fprintln(bench, l)
					}
				}
			}
			i = j
		}
		rep.Rounds = append(rep.Rounds, results)
	}
	if *memProf != "" {
		f, err := os.Create(*memProf)
		if err != nil {
			fatal(err)
		}
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			fatal(err)
		}
		f.Close()
	}
	fmt.Printf("Ran %s on %s/%s, %d CPUs (GOMAXPROCS %d), %s, in %s.\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		time.Now().UTC().Format("2006-01-02 15:04 MST"), time.Since(start).Round(time.Second))
	rep.Markdown(os.Stdout)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
