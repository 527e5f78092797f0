package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

func init() {
	commandDetails["publish"] = `Publishes a message to every consumer group of TOPIC. The body is BODY, or
the file given with --file, or stdin. A group receives the messages
published after it was first declared (by subscribe --group): subscribe
once before publishing. Prints the ID of each message sent, one a line.

--delay D delays the message: no consumer gets it before D from now. D is
a Go duration (10m, 24h) or days (1d, 7d, 1d12h; a day is 24h), at most
168h (7 days). The command exits once the broker holds the message:
the consumers of TOPIC deliver it when it is due.
`
	commandDetails["notify"] = `Sends a notification to RECIPIENT's queue, held until the recipient
consumes it with listen, even if it never listened before. The body is
BODY, the file given with --file, or stdin. Prints the ID of each message
sent, one a line. --delay D delays it, as for publish.
`
}

func publishCommand() *command {
	return &command{
		name:    "publish",
		args:    "TOPIC [BODY]",
		summary: "publish a message to a topic (body from BODY, --file or stdin)",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			return sendSetup(fs, g, "topic", func(ctx context.Context, c *messaging.Client, to string, msgs []*messaging.Message) error {
				return c.Publish(ctx, to, msgs...)
			})
		},
	}
}

func notifyCommand() *command {
	return &command{
		name:    "notify",
		args:    "RECIPIENT [BODY]",
		summary: "send a notification to a recipient's queue (read with listen)",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			return sendSetup(fs, g, "recipient", func(ctx context.Context, c *messaging.Client, to string, msgs []*messaging.Message) error {
				return c.Notify(ctx, to, msgs...)
			})
		},
	}
}

// sendBatch is how many messages one Publish or Notify call carries.
const sendBatch = 64

func sendSetup(fs *flag.FlagSet, g *global, what string,
	send func(ctx context.Context, c *messaging.Client, to string, msgs []*messaging.Message) error,
) func(context.Context, *env, []string) error {
	var mf messageFlags
	mf.register(fs)
	count := fs.Int("count", 1, "send `N` copies of the message, each with its own ID")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this `duration`, connecting included (exit 3)")
	var delayV delayFlag
	fs.Var(&delayV, "delay", "deliver no earlier than this `duration` from now: a Go duration (10m, 24h) or days (1d, 7d); at most 168h")
	delay := (*time.Duration)(&delayV)
	return func(ctx context.Context, e *env, args []string) error {
		if len(args) == 0 {
			return usagef("missing %s", what)
		}
		if *count < 1 {
			return usagef("--count %d: must be at least 1", *count)
		}
		if mf.id != "" && *count > 1 {
			return usagef("--id and --count %d: copies need distinct IDs", *count)
		}
		if *timeout <= 0 {
			return usagef("--timeout %s: must be positive", *timeout)
		}
		if *delay < 0 || *delay > messaging.MaxDelay {
			return usagef("--delay %s: must be from 0 to %s (7 days)", *delay, messaging.MaxDelay)
		}
		to := args[0]
		proto, err := mf.build(e, g, args[1:])
		if err != nil {
			return err
		}
		// One timeout covers connecting and sending.
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		c, err := openClient(ctx, e, g)
		if err != nil {
			return err
		}
		var due time.Time
		if *delay > 0 {
			due = time.Now().Add(*delay)
		}
		sent := 0
		for sent < *count {
			n := min(sendBatch, *count-sent)
			msgs := make([]*messaging.Message, n)
			for i := range msgs {
				m := *proto
				m.DeliverAt = due
				if m.ID == "" {
					// IDs are chosen here so they can be printed: Publish
					// does not return the IDs it generates.
					m.ID = uuid.NewString()
				}
				msgs[i] = &m
			}
			if err := send(ctx, c, to, msgs); err != nil {
				c.Close()
				if sent > 0 {
					return fmt.Errorf("sent %d of %d messages: %w", sent, *count, err)
				}
				return err
			}
			for _, m := range msgs {
				fmt.Fprintln(e.stdout, m.ID)
			}
			sent += n
		}
		g.log.Debug("sent", what, to, "count", sent)
		return c.Close()
	}
}

// openClient opens a client on the resolved URL, logging to the CLI's
// logger. ctx bounds the connection: a broker that accepts TCP
// connections but never answers fails when ctx ends (exit 3 when ctx has
// the command's --timeout).
func openClient(ctx context.Context, e *env, g *global, opts ...messaging.ClientOption) (*messaging.Client, error) {
	raw := g.resolveURL(e)
	safe := transport.Redact(raw)
	opts = append([]messaging.ClientOption{
		messaging.WithLogger(g.log),
		messaging.WithDrainTimeout(10 * time.Second),
	}, opts...)
	c, err := e.open(ctx, raw, opts...)
	if err != nil {
		if !strings.Contains(err.Error(), safe) { // else the adapter named it
			err = fmt.Errorf("open %s: %w", safe, err)
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (the broker did not answer before the timeout)", err)
		}
		return nil, err
	}
	g.log.Debug("connected", "url", safe, "transport", c.Capabilities().Name)
	return c, nil
}
