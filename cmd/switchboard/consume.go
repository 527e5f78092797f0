package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

func init() {
	commandDetails["subscribe"] = `Consumes TOPIC as a member of the consumer group --group (declared durably
if new: from then on the group receives every message published to TOPIC,
even while nobody consumes) and prints each message: its ID, key,
attempt, headers and body, as text or, with --json, one JSON object a
line. Each printed message is acknowledged. With --count N it exits after
N messages; messages fetched beyond N are released to the broker, not
acknowledged. Logs "ready" on stderr once subscribed. Ctrl-C stops it
gracefully (exit 0).
`
	commandDetails["listen"] = `Consumes the notifications sent to RECIPIENT with notify, including those
sent before anyone listened, and prints each like subscribe does. With
--count N it exits after N messages. Logs "ready" on stderr once
listening. Ctrl-C stops it gracefully (exit 0).

RECIPIENT's queue must exist (a notify to RECIPIENT, or an earlier
listen --create, created it; serve X creates X.rpc, not X): an unknown
RECIPIENT exits 6 (not found) and creates
nothing, so that a mistyped name is never an empty queue left behind.
--create creates the queue (to listen before anything was notified).
RECIPIENT may be a dead-letter queue (name ending in .dlq, see dlq);
listening on it creates no <name>.dlq.dlq.
`
}

// consumeFlags are the flags of the commands that consume.
type consumeFlags struct {
	count   int
	timeout time.Duration
	json    bool
}

func (f *consumeFlags) register(fs *flag.FlagSet, what string) {
	fs.IntVar(&f.count, "count", 0, "exit after `N` "+what+" (0: run until interrupted)")
	fs.DurationVar(&f.timeout, "timeout", 0, "stop after this `duration`, connecting included; with --count, exit 3 if fewer arrived (0: no limit)")
}

func (f *consumeFlags) check() error {
	if f.count < 0 {
		return usagef("--count %d: must not be negative", f.count)
	}
	if f.timeout < 0 {
		return usagef("--timeout %s: must not be negative", f.timeout)
	}
	return nil
}

func subscribeCommand() *command {
	return &command{
		name:    "subscribe",
		args:    "--group GROUP TOPIC",
		summary: "consume a topic as a consumer group and print each message",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			var cf consumeFlags
			cf.register(fs, "messages")
			fs.BoolVar(&cf.json, "json", false, "print each message as one JSON object a line")
			group := fs.String("group", "", "consumer `group` (required)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("want one TOPIC, got %d arguments", len(args))
				}
				if *group == "" {
					return usagef("missing --group")
				}
				if err := cf.check(); err != nil {
					return err
				}
				topic := args[0]
				p := &printer{w: e.stdout, json: cf.json}
				return consume(ctx, e, g, cf, "messages", func(c *messaging.Client, mw messaging.Middleware) (*messaging.Subscription, error) {
					return c.Subscribe(ctx, topic, *group, printHandler(p),
						messaging.WithMaxInFlight(1), messaging.WithRetry(holdRetry), messaging.WithMiddleware(mw))
				}, "topic", topic, "group", *group)
			}
		},
	}
}

func listenCommand() *command {
	return &command{
		name:    "listen",
		args:    "RECIPIENT",
		summary: "consume a recipient's notifications and print each message",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			var cf consumeFlags
			cf.register(fs, "messages")
			fs.BoolVar(&cf.json, "json", false, "print each message as one JSON object a line")
			create := fs.Bool("create", false, "create RECIPIENT's queue if it does not exist (default: exit 6)")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("want one RECIPIENT, got %d arguments", len(args))
				}
				if err := cf.check(); err != nil {
					return err
				}
				recipient := args[0]
				p := &printer{w: e.stdout, json: cf.json}
				return consume(ctx, e, g, cf, "messages", func(c *messaging.Client, mw messaging.Middleware) (*messaging.Subscription, error) {
					if !*create {
						if err := queueExists(ctx, c, recipient); err != nil {
							return nil, err
						}
					}
					return c.Listen(ctx, recipient, printHandler(p),
						messaging.WithMaxInFlight(1), messaging.WithRetry(holdRetry), messaging.WithMiddleware(mw))
				}, "recipient", recipient)
			}
		},
	}
}

// queueExists checks, declaring nothing, that the queue of recipient
// exists: a missing one is a *notFoundError (exit 6).
func queueExists(ctx context.Context, c *messaging.Client, recipient string) error {
	_, err := c.Admin().Inspect(ctx, recipient, "")
	if errors.Is(err, messaging.ErrNotFound) {
		// The adapter's text would name the queue again: say it once
		// (the broker error stays reachable with errors.As).
		return &notFoundError{
			text: fmt.Sprintf("recipient queue %s does not exist: nothing was notified to it and nobody listened (a name is mistyped? --create creates it)", recipient),
			err:  err,
		}
	}
	return err
}

func printHandler(p *printer) messaging.Handler {
	return func(_ context.Context, m *messaging.Message) error {
		if err := p.print(m, nil); err != nil {
			// stdout is gone (a closed pipe): keep the message.
			return fmt.Errorf("print message: %w", err)
		}
		return nil
	}
}

// limiter counts handled messages up to a limit. Messages beyond it are
// held until the end and then released unhandled, so a consumer with
// --count N acknowledges exactly N.
type limiter struct {
	limit int // 0: none

	mu      sync.Mutex
	claimed int
	handled int
	full    chan struct{} // closed when handled reaches limit
	stop    chan struct{} // closed when the command stops
	once    sync.Once
}

func newLimiter(limit int) *limiter {
	return &limiter{limit: limit, full: make(chan struct{}), stop: make(chan struct{})}
}

// middleware runs the handler for messages within the limit and holds
// the others until release.
func (l *limiter) middleware(next messaging.Handler) messaging.Handler {
	return func(ctx context.Context, m *messaging.Message) error {
		l.mu.Lock()
		select {
		case <-l.stop:
			l.mu.Unlock()
			return errReleased
		default:
		}
		if l.limit > 0 && l.claimed >= l.limit {
			l.mu.Unlock()
			select {
			case <-l.stop:
			case <-ctx.Done():
			}
			return errReleased
		}
		l.claimed++
		l.mu.Unlock()
		err := next(ctx, m)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil {
			l.claimed--
			return err
		}
		l.handled++
		if l.limit > 0 && l.handled == l.limit {
			close(l.full)
		}
		return nil
	}
}

func (l *limiter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.handled
}

// release lets held messages go.
func (l *limiter) release() { l.once.Do(func() { close(l.stop) }) }

// consume opens a client, starts a subscription with start, and runs until
// the count is reached, the timeout passes, ctx ends (Ctrl-C: a graceful
// stop) or the subscription fails; then it closes the client, which
// drains the subscription.
func consume(ctx context.Context, e *env, g *global, cf consumeFlags, what string,
	start func(c *messaging.Client, mw messaging.Middleware) (*messaging.Subscription, error), logArgs ...any,
) error {
	// --timeout covers connecting and subscribing too.
	octx := ctx
	var timeout <-chan time.Time
	if cf.timeout > 0 {
		t := time.NewTimer(cf.timeout)
		defer t.Stop()
		timeout = t.C
		var cancel context.CancelFunc
		octx, cancel = context.WithTimeout(ctx, cf.timeout)
		defer cancel()
	}
	c, err := openClient(octx, e, g)
	if err != nil {
		return err
	}
	l := newLimiter(cf.count)
	sub, err := start(c, l.middleware)
	if err != nil {
		c.Close()
		return err
	}
	// The subscription is declared: what is published from now on reaches
	// it. Scripts wait for this line before publishing.
	g.log.Info("ready", append(logArgs, "url", transport.Redact(g.resolveURL(e)))...)
	var runErr error
	select {
	case <-l.full:
	case <-ctx.Done():
		g.log.Info("interrupted; draining", "handled", l.count())
	case <-timeout:
		if cf.count > 0 {
			runErr = fmt.Errorf("%w: %d of %d %s in %s", messaging.ErrTimeout, l.count(), cf.count, what, cf.timeout)
		}
	case <-sub.Done():
		runErr = sub.Err()
		if runErr == nil {
			runErr = errors.New("subscription stopped")
		}
	}
	l.release()
	if err := c.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close: %w", err)
	}
	g.log.Debug("stopped", "handled", l.count())
	return runErr
}
