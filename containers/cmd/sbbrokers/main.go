// Command sbbrokers starts the brokers the Switchboard tests use in Docker
// containers (with testcontainers-go), for machines that have Docker but no
// local broker, and prints their endpoints as shell exports:
//
//	go build -o ./bin/sbbrokers ./cmd/sbbrokers   # exit codes need the built binary: go run reports every failure as 1
//	eval "$(./bin/sbbrokers up rabbitmq localstack)"
//	go test ./...
//	./bin/sbbrokers down
//
// Usage:
//
//	sbbrokers check
//	sbbrokers up [-run ID] [-timeout D] [-ttl D] [kafka] [rabbitmq] [localstack]
//	sbbrokers down [-run ID]
//
// `up` starts the named brokers (all three when none is named; "amqp" and
// "sqs" are accepted for rabbitmq and localstack), waits until each is
// ready, and prints on stdout, and only on stdout, one line per broker:
//
//	export SWITCHBOARD_KAFKA_BROKERS='127.0.0.1:32771'
//	export SWITCHBOARD_AMQP_URL='amqp://guest:guest@127.0.0.1:32772'
//	export SWITCHBOARD_SQS_ENDPOINT='http://127.0.0.1:32773'
//
// Progress and errors go to stderr. The containers outlive the command:
// they are labelled (dev.switchboard-go.sbbrokers, with the -run ID) and
// `down` removes them. As a safety net when `down` never runs, Ryuk (the
// testcontainers-go reaper) removes them once the command has been gone for
// -ttl (default 2h; TESTCONTAINERS_RYUK_DISABLED=true turns Ryuk off, and
// then only `down` removes them).
//
// Before anything else every command checks that a Docker engine answers
// (DOCKER_HOST, or the usual sockets, pinged with a 2 s timeout). When none
// does, it prints one line on stderr, nothing on stdout, and exits 3.
//
// Exit codes: 0 done; 1 a broker failed to start (none is left running) or
// `down` failed; 2 usage; 3 no usable Docker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/testcontainers/testcontainers-go"
)

const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitNoDocker = 3
)

const usage = `usage:
  sbbrokers check
  sbbrokers up [-run ID] [-timeout D] [-ttl D] [kafka] [rabbitmq] [localstack]
  sbbrokers down [-run ID]
exit codes: 0 ok, 1 failed, 2 usage, 3 no usable Docker (of the built binary:
go run reports every failure as 1; go build -o ./bin/sbbrokers ./cmd/sbbrokers)`

func main() {
	// stdout is for the exports alone (it is eval'ed): whatever else would
	// print there (testcontainers-go does in a few places) goes to stderr.
	stdout := os.Stdout
	os.Stdout = os.Stderr
	os.Exit(run(os.Args[1:], stdout, os.Stderr))
}

// stderr is where progress goes (set by run).
var stderr io.Writer = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(stderr, "sbbrokers: "+format+"\n", args...)
}

func run(args []string, stdout, errw io.Writer) int {
	stderr = errw
	if len(args) == 0 {
		fmt.Fprintln(errw, usage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("sbbrokers "+cmd, flag.ContinueOnError)
	fs.SetOutput(errw)
	runID := fs.String("run", os.Getenv("SBBROKERS_RUN"), "label the containers with this run `ID` (up), remove only this run's (down); default $SBBROKERS_RUN")
	var timeout, ttl *time.Duration
	switch cmd {
	case "check":
	case "up":
		timeout = fs.Duration("timeout", 5*time.Minute, "give up when the brokers are not ready by then (image pulls included)")
		ttl = fs.Duration("ttl", 2*time.Hour, "Ryuk removes the containers this long after the command exits, if `down` has not")
	case "down":
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(errw, "sbbrokers: unknown command %q\n%s\n", cmd, usage)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	var brokers []string
	if cmd == "up" {
		var err error
		if brokers, err = parseBrokers(fs.Args()); err != nil {
			logf("%v", err)
			return exitUsage
		}
	} else if fs.NArg() > 0 {
		logf("%s takes no arguments", cmd)
		return exitUsage
	}

	// Docker first, fast, before testcontainers-go is asked anything.
	host, err := checkDocker(ctx)
	if err == nil {
		err = providerHealthy(ctx)
	}
	if err != nil {
		fmt.Fprintf(errw, "sbbrokers: %s\n", oneLine(err))
		return exitNoDocker
	}

	switch cmd {
	case "check":
		logf("Docker answers at %s", host)
		return exitOK
	case "down":
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		n, err := down(ctx, host, *runID)
		if err != nil {
			logf("down: %s", oneLine(err))
			return exitFailed
		}
		logf("removed %d broker container(s)", n)
		return exitOK
	}

	// up
	if os.Getenv("RYUK_RECONNECTION_TIMEOUT") == "" && os.Getenv("TESTCONTAINERS_RYUK_RECONNECTION_TIMEOUT") == "" {
		// Ryuk removes a session's containers this long after its last
		// client (this command) went away: the containers must outlive
		// the command, for the test run.
		os.Setenv("TESTCONTAINERS_RYUK_RECONNECTION_TIMEOUT", ttl.String())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	exports, err := up(ctx, brokers, *runID)
	if err != nil {
		logf("up: %s", oneLine(err))
		if errors.Is(err, errNoDocker) {
			return exitNoDocker
		}
		return exitFailed
	}
	for _, e := range exports {
		name, value, _ := strings.Cut(e, "=")
		fmt.Fprintf(stdout, "export %s=%s\n", name, shellQuote(value))
	}
	return exitOK
}

// providerHealthy asks testcontainers-go itself whether its Docker provider
// is healthy (what testcontainers.SkipIfProviderIsNotHealthy does), with a
// timeout, turning its panics into errors.
func providerHealthy(ctx context.Context) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*pingTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("%v", r)
			}
		}()
		p, err := testcontainers.ProviderDocker.GetProvider()
		if err != nil {
			done <- err
			return
		}
		done <- p.Health(ctx)
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%w: testcontainers-go: Docker provider is not healthy: %v", errNoDocker, err)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
