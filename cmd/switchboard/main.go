// Command switchboard is the command-line tool of the Switchboard SDK: it
// publishes, subscribes, notifies, listens, makes and serves requests,
// gathers replies from responding groups, inspects and redrives dead
// letters, and benchmarks, on any transport URL.
//
// Usage:
//
//	switchboard [--url URL] [-v|-q] COMMAND [flags] [args]
//
//	switchboard publish orders '{"id":1}' --key customer-42 --header tenant=acme
//	switchboard publish orders --file order.json --count 10
//	echo hello | switchboard publish orders
//	switchboard subscribe orders --group billing --count 1 --json
//	switchboard notify mailer 'welcome'
//	switchboard listen mailer --count 1
//	switchboard serve prices --exec 'tr a-z A-Z'
//	switchboard request prices 'book' --timeout 5s
//	switchboard respond quotes --group dhl --exec './quote.sh'
//	switchboard gather quotes 'parcel 2kg' --want 3 --timeout 2s
//	switchboard dlq list orders billing
//	switchboard dlq redrive orders billing [--to orders-retry]
//	switchboard admin inspect orders billing
//	switchboard admin delete-group orders billing
//	switchboard bench pubsub --messages 10000 --size 256 --concurrency 4
//	switchboard dev kafka          # a local Kafka (kfake) until Ctrl-C; prints the exports
//	switchboard dev sqs            # the pinned SQS/SNS emulator, the same way
//	switchboard help [COMMAND]
//	switchboard version
//
// Every command takes --help. The URL comes from --url, else the
// SWITCHBOARD_URL environment variable, else mem://. It is printed only
// redacted (transport.Redact): passwords and secret query parameters never
// appear in output, errors or logs.
//
// mem:// is an in-memory broker private to one process: two switchboard
// processes on mem:// do not see each other's messages. It is useful for
// bench and for trying commands; use a network broker (amqp://, kafka://,
// sqs://, as the adapters are compiled in, see transports.go) to connect
// processes.
//
// Exit codes, for scripts (of the built binary: `go run` reports every
// failure as 1; build it with go build -o ./bin/switchboard ./cmd/switchboard
// or go install ./cmd/switchboard):
//
//	0  success (also: subscribe, listen, serve, dlq, dev stopped by Ctrl-C or SIGTERM)
//	1  runtime or broker error: a refused connection, wrong credentials
//	2  usage error: bad flag, argument, name, URL (one without a host) or header
//	3  timeout: no reply in time, or fewer messages than --count in time
//	4  no responders: nobody serves the requested service (never, or not now)
//	5  remote error: the responder returned an error
//	6  not found: the consumer group or queue does not exist (listen, dlq, admin)
//
// Output: publish and notify print the ID of each message sent, one a
// line. subscribe, listen and dlq list print each message as a text block
// ("--- message ID", then its fields, headers and body) or, with --json,
// as one JSON object a line with the fields id, topic, key, type, version,
// content_type, time, correlation_id, attempt, headers and body (or
// body_base64 when the body is not UTF-8), plus dead_letter (topic, group,
// attempts, last_error, permanent, first_failure, last_failure) for dead
// letters. request prints the reply's body. bench prints a table: pattern,
// messages, size, concurrency, seconds, msg/s, MB/s, p50, p90, p99, max.
//
// --timeout, where a command has one, covers the whole command from
// connecting to the result: a broker that accepts connections but never
// answers ends the command at --timeout with exit 3. Errors name the URL
// once, redacted as user:xxxxx@.
//
// Logs (log/slog, text) go to stderr; -v shows debug logs, -q only errors.
// Subscribing commands (subscribe, listen, serve, respond) and dev log
// "msg=ready" on stderr once they are subscribed (their group or queue is
// declared) or the broker answers, so that a script can wait for it
// before publishing:
//
//	./bin/switchboard subscribe orders --group audit --count 1 2>sub.log &
//	until grep -q msg=ready sub.log; do sleep 0.1; done
//	./bin/switchboard publish orders '{"id":1}'
//
// A consumer group receives only what is published after it was first
// declared: a publish made before "ready" may never reach it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// Exit codes of the command, documented in the package doc and in help.
const (
	exitOK           = 0
	exitError        = 1
	exitUsage        = 2
	exitTimeout      = 3
	exitNoResponders = 4
	exitRemote       = 5
)

const exitCodesHelp = `Exit codes:
  0  success (also: subscribe, listen, serve, dlq, dev stopped by Ctrl-C or SIGTERM)
  1  runtime or broker error: a refused connection, wrong credentials
  2  usage error: bad flag, argument, name, URL (one without a host) or header
  3  timeout: no reply in time, or fewer messages than --count in time
  4  no responders: nobody serves the requested service (never, or not now)
  5  remote error: the responder returned an error
  6  not found: the consumer group or queue does not exist (listen, dlq, admin)
These are the built binary's: go run reports every failure as 1. Where
they matter, build it: go build -o ./bin/switchboard ./cmd/switchboard
(or go install ./cmd/switchboard).
`

func main() {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) { // under nohup, keep ignoring it
		// A closed terminal stops dev and consumers gracefully.
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what a command runs with: its streams and how it opens clients.
// Tests replace open to share one in-memory broker between "processes".
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// open opens a client on a URL; messaging.Open by default.
	open func(ctx context.Context, url string, opts ...messaging.ClientOption) (*messaging.Client, error)
	// terminal reports whether a stream is a terminal (bench's progress,
	// the hint when a body is read from a terminal).
	terminal func(stream any) bool
}

// run runs the command line args (without the program name) and returns
// the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, &env{
		stdin:    stdin,
		stdout:   stdout,
		stderr:   stderr,
		getenv:   os.Getenv,
		open:     messaging.Open,
		terminal: isTerminal,
	}, args)
}

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis of the positional arguments
	summary string
	// setup defines the command's flags on fs and returns the function
	// that runs it with the positional arguments.
	setup func(fs *flag.FlagSet, g *global) func(ctx context.Context, e *env, args []string) error
}

func commands() []*command {
	return []*command{
		devCommand(),
		publishCommand(), subscribeCommand(), notifyCommand(), listenCommand(),
		requestCommand(), serveCommand(), gatherCommand(), respondCommand(),
		dlqCommand(), benchCommand(),
		adminCommand(),
		outboxCommand(),
	}
}

func findCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// global holds the flags every command accepts, before or after its name.
type global struct {
	url     string
	verbose bool
	quiet   bool

	log *slog.Logger
}

func (g *global) register(fs *flag.FlagSet) {
	fs.StringVar(&g.url, "url", g.url, "transport `URL` (default: $SWITCHBOARD_URL, else mem://)")
	fs.BoolVar(&g.verbose, "v", g.verbose, "verbose: debug logs on stderr")
	fs.BoolVar(&g.quiet, "q", g.quiet, "quiet: only error logs on stderr")
}

// resolveURL returns the URL to open: --url, else $SWITCHBOARD_URL, else
// mem://.
func (g *global) resolveURL(e *env) string {
	if g.url != "" {
		return g.url
	}
	if u := e.getenv(messaging.EnvURL); u != "" {
		return u
	}
	return messaging.DefaultURL
}

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func runEnv(ctx context.Context, e *env, args []string) int {
	g := &global{}
	top := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top)
	showVersion := top.Bool("version", false, "print the version and exit")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printMainHelp(e.stdout)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "switchboard: %v\nRun 'switchboard help' for usage.\n", err)
		return exitUsage
	}
	if *showVersion {
		printVersion(e.stdout)
		return exitOK
	}
	rest := top.Args()
	if len(rest) == 0 {
		printMainHelp(e.stderr)
		return exitUsage
	}
	name, rest := rest[0], rest[1:]
	switch name {
	case "help":
		if len(rest) == 0 {
			printMainHelp(e.stdout)
			return exitOK
		}
		c := findCommand(rest[0])
		if c == nil {
			fmt.Fprintf(e.stderr, "switchboard help: unknown command %q\nRun 'switchboard help' for the list of commands.\n", rest[0])
			return exitUsage
		}
		fs, _ := newFlagSet(c, &global{})
		printCommandHelp(e.stdout, c, fs)
		return exitOK
	case "version":
		printVersion(e.stdout)
		return exitOK
	}
	c := findCommand(name)
	if c == nil {
		fmt.Fprintf(e.stderr, "switchboard: unknown command %q\nRun 'switchboard help' for the list of commands.\n", name)
		return exitUsage
	}
	fs, runFn := newFlagSet(c, g)
	pos, err := parseInterspersed(fs, rest)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandHelp(e.stdout, c, fs)
			return exitOK
		}
		fmt.Fprintf(e.stderr, "switchboard %s: %v\nUsage: switchboard %s [flags] %s\nRun 'switchboard %s --help' for details.\n",
			c.name, err, c.name, c.args, c.name)
		return exitUsage
	}
	level := slog.LevelInfo
	switch {
	case g.verbose:
		level = slog.LevelDebug
	case g.quiet:
		level = slog.LevelError
	}
	g.log = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // a CLI's stderr needs no timestamps
			}
			return a
		},
	}))
	rawURL := g.resolveURL(e)
	err = runFn(ctx, e, pos)
	code := exitCode(err)
	if err != nil {
		// The line starts with "switchboard COMMAND:": a leading
		// "switchboard: " of the SDK's errors would name the same layer
		// twice.
		msg := strings.TrimPrefix(redactText(err.Error(), rawURL), "switchboard: ")
		fmt.Fprintf(e.stderr, "switchboard %s: %s\n", c.name, msg)
		if code == exitUsage {
			fmt.Fprintf(e.stderr, "Run 'switchboard %s --help' for usage.\n", c.name)
		}
	}
	return code
}

func newFlagSet(c *command, g *global) (*flag.FlagSet, func(context.Context, *env, []string) error) {
	fs := flag.NewFlagSet("switchboard "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	runFn := c.setup(fs, g)
	g.register(fs)
	return fs, runFn
}

// parseInterspersed parses flags anywhere among the positional arguments,
// as most CLIs do ("publish orders --key k body"). Everything after "--"
// is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int {
	var ue *usageError
	var re *messaging.RemoteError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, messaging.ErrInvalid):
		return exitUsage
	case errors.As(err, &re):
		return exitRemote
	case errors.Is(err, messaging.ErrNoResponders):
		return exitNoResponders
	case errors.Is(err, messaging.ErrNotFound):
		return exitNotFound
	case errors.Is(err, messaging.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return exitTimeout
	}
	return exitError
}

// redactText removes the URL's secrets from text, in case an adapter's
// error quoted the URL or its password despite the transport contract.
func redactText(text, rawURL string) string {
	safe := transport.Redact(rawURL)
	if safe == rawURL {
		return text
	}
	text = strings.ReplaceAll(text, rawURL, safe)
	// Secrets quoted outside the URL are masked too; the redacted URL
	// itself is left as transport.Redact wrote it (user:xxxxx@), so a URL
	// reads the same in every message even when the user name equals the
	// password.
	parts := strings.Split(text, safe)
	for i := range parts {
		for _, secret := range urlSecrets(rawURL) {
			if len(secret) >= 3 {
				parts[i] = strings.ReplaceAll(parts[i], secret, "xxxxx")
			}
		}
	}
	return strings.Join(parts, safe)
}

func printMainHelp(w io.Writer) {
	fmt.Fprint(w, `switchboard: publish, consume, request, serve, inspect dead letters and
benchmark on any Switchboard transport.

Usage:
  switchboard [--url URL] [-v|-q] COMMAND [flags] [args]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n  %-10s %s\n", "help", "show help for a command: switchboard help COMMAND",
		"version", "print the version, Go version and registered URL schemes")
	fmt.Fprintf(w, `
Global flags (also accepted after the command name):
  --url URL   transport URL (default: $SWITCHBOARD_URL, else mem://);
              registered schemes: %s
  -v          debug logs on stderr
  -q          only error logs on stderr

mem:// is an in-memory broker private to one process: two switchboard
processes on mem:// do not share messages. Use a network broker URL to
connect processes. URLs are printed only with their secrets redacted.

`, strings.Join(transport.Schemes(), ", "))
	fmt.Fprint(w, exitCodesHelp)
}

func printCommandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: switchboard %s [flags] %s\n\n%s\n", c.name, c.args, c.summary)
	if d := commandDetails[c.name]; d != "" {
		fmt.Fprintf(w, "\n%s", d)
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprintf(w, "\n%s", exitCodesHelp)
}

// commandDetails holds the longer help of each command.
var commandDetails = map[string]string{}
