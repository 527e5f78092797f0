package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

func init() {
	commandDetails["dlq"] = `Subcommands:
  dlq list TOPIC GROUP         print the dead letters of GROUP on TOPIC, with
                               their failure envelope, and leave them queued
  dlq list RECIPIENT           the same for a recipient's queue (listen)
  dlq redrive TOPIC GROUP      republish each dead letter's original message
                               to its original topic (or --to) and remove it
  dlq redrive RECIPIENT        the same, notifying the recipient again

The dead-letter queue is messaging.DeadLetterQueue(TOPIC, GROUP), that is
TOPIC.GROUP.dlq, or RECIPIENT.dlq. A broker cannot say how many messages a
queue holds through the portable API, so both commands read until no new
dead letter arrived for --wait, or --max were read.

list holds every dead letter unacknowledged while it reads, then releases
them all to the queue: none is removed. (--max bounds how many it holds.)

redrive republishes to the topic: EVERY consumer group of the topic gets
the message again, not only GROUP; use --to to send it to another topic
(or recipient). A dead letter that comes back during the same run (it
failed again at once) is left in the queue, not redriven twice. Dead
requests (SERVICE.rpc.dlq) are listed but never redriven: their requester
is gone.
`
}

func dlqCommand() *command {
	return &command{
		name:    "dlq",
		args:    "list|redrive TOPIC [GROUP]",
		summary: "list dead letters, or redrive them to their topic",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			wait := fs.Duration("wait", 2*time.Second, "stop once no new dead letter arrived for this `duration`")
			maxN := fs.Int("max", 1000, "read at most `N` dead letters")
			asJSON := fs.Bool("json", false, "list: print each dead letter as one JSON object a line")
			to := fs.String("to", "", "redrive: send to this `topic` (or recipient) instead of the original")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) < 2 || len(args) > 3 {
					return usagef("want list|redrive TOPIC [GROUP], got %d arguments", len(args))
				}
				if *wait <= 0 {
					return usagef("--wait %s: must be positive", *wait)
				}
				if *maxN < 1 {
					return usagef("--max %d: must be at least 1", *maxN)
				}
				topic, group := args[1], ""
				if len(args) == 3 {
					group = args[2]
				}
				switch args[0] {
				case "list":
					if *to != "" {
						return usagef("--to applies to redrive only")
					}
					return dlqList(ctx, e, g, topic, group, *wait, *maxN, *asJSON)
				case "redrive":
					return dlqRedrive(ctx, e, g, topic, group, *to, *wait, *maxN)
				}
				return usagef("unknown dlq subcommand %q: want list or redrive", args[0])
			}
		},
	}
}

// idleWatch ends a read of a queue: once nothing new arrived for wait, or
// max messages were seen.
type idleWatch struct {
	wait time.Duration
	max  int

	mu   sync.Mutex
	seen int
	poke chan struct{}
	full chan struct{}
	once sync.Once
}

func newIdleWatch(wait time.Duration, max int) *idleWatch {
	return &idleWatch{wait: wait, max: max, poke: make(chan struct{}, 1), full: make(chan struct{})}
}

// saw records one new message; it reports false once max were seen.
func (w *idleWatch) saw() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen >= w.max {
		return false
	}
	w.seen++
	if w.seen == w.max {
		w.once.Do(func() { close(w.full) })
	}
	select {
	case w.poke <- struct{}{}:
	default:
	}
	return true
}

// run waits until the queue has been idle for wait, max were seen, the
// subscription stopped, or ctx ended (Ctrl-C: a graceful stop, not an
// error).
func (w *idleWatch) run(ctx context.Context, log *slog.Logger, sub *messaging.Subscription) error {
	t := time.NewTimer(w.wait)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return nil
		case <-w.poke:
			t.Reset(w.wait)
		case <-w.full:
			return nil
		case <-ctx.Done():
			log.Info("interrupted; stopping")
			return nil
		case <-sub.Done():
			if err := sub.Err(); err != nil {
				return err
			}
			return fmt.Errorf("subscription stopped")
		}
	}
}

// listenDLQ listens on the dead-letter queue of topic and group. The
// subscription dead-letters into the same queue (it never does, with its
// retry budget), so that no ".dlq.dlq" queue is declared.
func listenDLQ(ctx context.Context, c *messaging.Client, topic, group string, maxInFlight int, keyOrder bool, h messaging.Handler) (*messaging.Subscription, string, error) {
	q := messaging.DeadLetterQueue(topic, group)
	sub, err := c.Listen(ctx, q, h,
		messaging.WithDeadLetterQueue(q),
		messaging.WithRetry(holdRetry),
		messaging.WithMaxInFlight(maxInFlight),
		messaging.WithKeyOrdering(keyOrder))
	return sub, q, err
}

func dlqList(ctx context.Context, e *env, g *global, topic, group string, wait time.Duration, maxN int, asJSON bool) error {
	c, err := openClient(ctx, e, g)
	if err != nil {
		return err
	}
	p := &printer{w: e.stdout, json: asJSON}
	w := newIdleWatch(wait, maxN)
	stop := make(chan struct{})
	var mu sync.Mutex
	printed := map[string]bool{}
	var printErr error
	// Every dead letter is held: its handler waits until the end and
	// then fails, which releases it (never acknowledges it). Key
	// ordering is off, so a held letter does not hide the next of its key.
	h := func(hctx context.Context, m *messaging.Message) error {
		mu.Lock()
		first := !printed[m.ID]
		printed[m.ID] = true
		mu.Unlock()
		if first {
			select {
			case <-stop:
				return errReleased
			default:
			}
			if w.saw() {
				dl, perr := messaging.ParseDeadLetter(m)
				if perr != nil {
					g.log.Warn("not a dead letter: no failure envelope", "id", m.ID, "error", perr)
					dl = nil
				}
				if err := p.print(m, dl); err != nil {
					mu.Lock()
					printErr = err
					mu.Unlock()
				}
			}
		}
		select {
		case <-stop:
		case <-hctx.Done():
		}
		return errReleased
	}
	sub, q, err := listenDLQ(ctx, c, topic, group, maxN, false, h)
	if err != nil {
		c.Close()
		return err
	}
	g.log.Debug("reading dead letters", "queue", q)
	runErr := w.run(ctx, g.log, sub)
	close(stop)
	if err := c.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close: %w", err)
	}
	mu.Lock()
	n := len(printed)
	if runErr == nil {
		runErr = printErr
	}
	mu.Unlock()
	g.log.Info("listed dead letters; left in the queue", "queue", q, "count", min(n, maxN))
	return runErr
}

func dlqRedrive(ctx context.Context, e *env, g *global, topic, group, to string, wait time.Duration, maxN int) error {
	c, err := openClient(ctx, e, g)
	if err != nil {
		return err
	}
	w := newIdleWatch(wait, maxN)
	stop := make(chan struct{})
	var mu sync.Mutex
	done := map[string]bool{} // IDs redriven in this run
	redriven := 0
	h := func(hctx context.Context, m *messaging.Message) error {
		mu.Lock()
		again := done[m.ID]
		mu.Unlock()
		hold := func() error {
			select {
			case <-stop:
			case <-hctx.Done():
			}
			return errReleased
		}
		if again {
			// It failed again since we redrove it: leave it queued.
			return hold()
		}
		select {
		case <-stop:
			return errReleased
		default:
		}
		dl, err := messaging.ParseDeadLetter(m)
		if err != nil {
			g.log.Warn("not a dead letter (no failure envelope); left in the queue", "id", m.ID, "error", err)
			return hold()
		}
		if dl.Original.ReplyTo != "" {
			// A request: its requester has given up long ago, and its
			// envelope names the service, not the service's queue.
			g.log.Warn("a dead-lettered request cannot be redriven; left in the queue", "id", m.ID, "service", dl.Topic)
			return hold()
		}
		if !w.saw() {
			return hold()
		}
		dest := dl.Topic
		if to != "" {
			dest = to
		}
		sctx, cancel := context.WithTimeout(hctx, 30*time.Second)
		defer cancel()
		if dl.Group != "" {
			err = c.Publish(sctx, dest, dl.Original)
		} else {
			err = c.Notify(sctx, dest, dl.Original)
		}
		if err != nil {
			g.log.Warn("redrive failed; will retry", "id", m.ID, "to", dest, "error", err)
			return fmt.Errorf("redrive %s to %s: %w", m.ID, dest, err)
		}
		mu.Lock()
		done[m.ID] = true
		redriven++
		mu.Unlock()
		fmt.Fprintf(e.stdout, "%s -> %s\n", m.ID, dest)
		return nil
	}
	sub, q, err := listenDLQ(ctx, c, topic, group, 16, true, h)
	if err != nil {
		c.Close()
		return err
	}
	runErr := w.run(ctx, g.log, sub)
	close(stop)
	if err := c.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("close: %w", err)
	}
	mu.Lock()
	n := redriven
	mu.Unlock()
	g.log.Info("redrove dead letters", "queue", q, "count", n)
	return runErr
}
