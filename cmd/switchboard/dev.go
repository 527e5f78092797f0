package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/switchboard-go/switchboard/internal/sqsemu"
)

func init() {
	commandDetails["dev"] = `Runs a local broker for trying Switchboard, until Ctrl-C (or SIGTERM), and
prints on stdout the shell exports that point the CLI, a service
(SWITCHBOARD_URL) and the tests at it:

  kafka  an in-process Kafka cluster (kfake, one broker speaking the Kafka
         protocol) on 127.0.0.1:--port (default 9092). Prints
         SWITCHBOARD_URL=kafka://… and SWITCHBOARD_KAFKA_BROKERS.
  sqs    the pinned SNS+SQS emulator (fauxqs, sqs/testdata/emulator;
         installed with npm on first use, needs Node >= 20 and a clone of
         the repository) on 127.0.0.1:--port (default 4566). Prints
         SWITCHBOARD_URL=sqs://…, SWITCHBOARD_SQS_ENDPOINT and the dummy
         AWS credentials and region the emulator accepts.

Both keep everything in memory: stopping them loses every topic, queue
and message. Logs "ready" on stderr once the broker answers, then the
exports are complete on stdout. For RabbitMQ, use the machine's server
(amqp://guest:guest@127.0.0.1:5672/; scripts/brokers.sh installs it).
`
}

func devCommand() *command {
	return &command{
		name:    "dev",
		args:    "kafka|sqs",
		summary: "run a local Kafka (kfake) or SQS/SNS (emulator) broker and print its exports",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			port := fs.Int("port", -1, "listen on 127.0.0.1:`PORT` (default: 9092 for kafka, 4566 for sqs; 0: a free port)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("want one broker: kafka or sqs")
				}
				if *port < -1 || *port > 65535 {
					return usagef("--port %d: want 0 to 65535", *port)
				}
				switch args[0] {
				case "kafka":
					return devKafka(ctx, e, g, *port)
				case "sqs":
					return devSQS(ctx, e, g, *port)
				case "rabbitmq", "amqp":
					return usagef("dev %s: use the machine's RabbitMQ (amqp://guest:guest@127.0.0.1:5672/; bash scripts/brokers.sh installs and starts it)", args[0])
				}
				return usagef("unknown broker %q: want kafka or sqs", args[0])
			}
		},
	}
}

// exports prints shell exports, one a line, values single-quoted.
func exports(e *env, kv ...[2]string) {
	var b strings.Builder
	for _, p := range kv {
		fmt.Fprintf(&b, "export %s='%s'\n", p[0], strings.ReplaceAll(p[1], "'", `'\''`))
	}
	fmt.Fprint(e.stdout, b.String())
}

func devKafka(ctx context.Context, e *env, g *global, port int) error {
	if port < 0 {
		port = 9092
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}
	if port > 0 {
		opts = append(opts, kfake.Ports(port))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("dev kafka: start kfake on port %d: %w", port, err)
	}
	defer c.Close()
	addrs := strings.Join(c.ListenAddrs(), ",")
	u := "kafka://" + addrs
	exports(e, [2]string{"SWITCHBOARD_URL", u}, [2]string{"SWITCHBOARD_KAFKA_BROKERS", addrs})
	g.log.Info("ready", "broker", "kafka (kfake, in memory)", "url", u)
	<-ctx.Done()
	g.log.Info("interrupted; stopping kafka")
	return nil
}

func devSQS(ctx context.Context, e *env, g *global, port int) error {
	if port < 0 {
		port = 4566
	}
	g.log.Info("starting the SQS/SNS emulator (installing it with npm on first use)", "dir", sqsemu.Dir())
	emu, err := sqsemu.StartLogs(port, e.stderr)
	if err != nil {
		return fmt.Errorf("dev sqs: %w", err)
	}
	defer emu.Stop()
	u := "sqs://?region=" + sqsemu.Region + "&endpoint=" + url.QueryEscape(emu.Endpoint())
	kv := append([][2]string{}, sqsemu.DummyCredentials...)
	kv = append(kv,
		[2]string{"AWS_REGION", sqsemu.Region},
		[2]string{"SWITCHBOARD_SQS_ENDPOINT", emu.Endpoint()},
		[2]string{"SWITCHBOARD_URL", u},
	)
	exports(e, kv...)
	g.log.Info("ready", "broker", "sqs (fauxqs emulator, in memory)", "url", u, "port", strconv.Itoa(emu.Port))
	select {
	case <-ctx.Done():
		g.log.Info("interrupted; stopping the emulator")
		return nil
	case <-emu.Done():
		return fmt.Errorf("dev sqs: the emulator exited")
	}
}
