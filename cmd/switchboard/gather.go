package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

func init() {
	commandDetails["gather"] = `Publishes a request to TOPIC and collects the replies of its responding
groups (see respond): until --want replies arrived, or --timeout passed.
Prints each reply like subscribe does (--json for JSON lines), with the
group that sent it ("responder: dhl"; "responder" in JSON); responders'
errors go to stderr. Without --want it collects until --timeout and
succeeds with any number of replies, none included. With --want N it
exits 3 when fewer than N replies (errors included) arrived in time.
`
	commandDetails["respond"] = `Answers the requests published to TOPIC with gather, as a member of
--group: each group answers once. Like serve, it echoes each request, or
with --exec CMD runs CMD per request (see 'switchboard help serve').
Logs "ready" on stderr once responding. Ctrl-C stops it gracefully.
`
}

func respondCommand() *command {
	return &command{
		name:    "respond",
		args:    "--group GROUP TOPIC",
		summary: "answer gathers on a topic as a group: echo, or run a command (--exec)",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			var cf consumeFlags
			cf.register(fs, "requests")
			group := fs.String("group", "", "responding `group` (required)")
			execCmd := fs.String("exec", "", "run `CMD` (with sh -c) per request: body on stdin, reply from stdout")
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
				h := echo
				if *execCmd != "" {
					h = execHandler(topic, *execCmd)
				}
				return consume(ctx, e, g, cf, "requests", func(c *messaging.Client, mw messaging.Middleware) (*messaging.Subscription, error) {
					return c.Respond(ctx, topic, *group, h, messaging.WithMaxInFlight(1),
						messaging.WithRetry(holdRetry), messaging.WithMiddleware(mw))
				}, "topic", topic, "group", *group)
			}
		},
	}
}

func gatherCommand() *command {
	return &command{
		name:    "gather",
		args:    "TOPIC [BODY]",
		summary: "publish a request and collect the replies of every responding group",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			var mf messageFlags
			mf.register(fs)
			want := fs.Int("want", 0, "return once `N` replies arrived; exit 3 if fewer did in time (0: collect until --timeout)")
			timeout := fs.Duration("timeout", 5*time.Second, "collect replies for at most this `duration` (connecting is bounded by it too)")
			asJSON := fs.Bool("json", false, "print each reply as one JSON object a line")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) == 0 {
					return usagef("missing TOPIC")
				}
				if *want < 0 {
					return usagef("--want %d: must not be negative", *want)
				}
				if *timeout <= 0 {
					return usagef("--timeout %s: must be positive", *timeout)
				}
				topic := args[0]
				req, err := mf.build(e, g, args[1:])
				if err != nil {
					return err
				}
				// --timeout bounds connecting too (a broker that never
				// answers), then the collection.
				octx, cancel := context.WithTimeout(ctx, *timeout)
				defer cancel()
				c, err := openClient(octx, e, g)
				if err != nil {
					return err
				}
				defer c.Close()
				opts := []messaging.GatherOption{messaging.GatherTimeout(*timeout)}
				if *want > 0 {
					opts = append(opts, messaging.WantReplies(*want))
				}
				got, gerr := c.Gather(ctx, topic, req, opts...)
				if got != nil {
					p := &printer{w: e.stdout, json: *asJSON}
					for _, r := range got.Replies {
						if err := p.print(r, nil); err != nil {
							return err
						}
					}
					for _, re := range got.Errors {
						g.log.Warn("responder error", "error", re.Error(), "code", re.Code, "responder", re.Responder)
					}
					g.log.Debug("gathered", "replies", len(got.Replies), "errors", len(got.Errors))
				}
				if gerr != nil && errors.Is(gerr, messaging.ErrTimeout) && got != nil {
					return fmt.Errorf("%d of %d replies in %s: %w", got.Count(), *want, *timeout, gerr)
				}
				return gerr
			}
		},
	}
}
