package main

import (
	"context"
	"errors"
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
  dlq list RECIPIENT           the same for a recipient's queue (listen), or
                               SERVICE.rpc for a service's dead requests
  dlq redrive TOPIC GROUP      republish each dead letter's original message
                               to its original topic (or --to) and remove it
  dlq redrive RECIPIENT        the same, notifying the recipient again
  dlq purge TOPIC [GROUP]      remove every dead letter, keep the queue
  dlq delete TOPIC [GROUP]     delete the dead-letter queue

The dead-letter queue is messaging.DeadLetterQueue(TOPIC, GROUP), that is
TOPIC.GROUP.dlq, or RECIPIENT.dlq. No subcommand creates it. When the
group or recipient exists but nothing was ever dead-lettered there, each
says so ("no dead letters") and exits 0; when neither the group (or
recipient) nor its dead-letter queue exists (a name is mistyped?), each
fails with exit code 6 (not found).

list is read-only: it logs how many dead letters wait (count=N) and
prints them without consuming them, declaring anything or raising their
delivery count, where the broker can read without counting a delivery
(mem://, Kafka). RabbitMQ (a quorum queue counts every delivery in
x-delivery-count) and SQS (every receive raises ApproximateReceiveCount)
cannot: there list prints only the count, unless --receive is given,
which reads the letters by receiving them and releasing them again, raising
each one's delivery count by at least one. A broker cannot say in advance
how many messages --receive will get, so it reads until no new dead letter
arrived for --wait, or --max were read.

redrive republishes to the topic: EVERY consumer group of the topic gets
the message again, not only GROUP; use --to to send it to another topic
(or recipient). A dead letter that comes back during the same run (it
failed again at once) is left in the queue, not redriven twice. Dead
requests (SERVICE.rpc.dlq) are listed but never redriven: their requester
is gone.

purge and delete act at once; use "switchboard admin" for consumer
groups and other queues.
`
}

func dlqCommand() *command {
	return &command{
		name:    "dlq",
		args:    "list|redrive|purge|delete TOPIC [GROUP]",
		summary: "list dead letters, or redrive them to their topic",
		setup: func(fs *flag.FlagSet, g *global) func(context.Context, *env, []string) error {
			wait := fs.Duration("wait", 2*time.Second, "stop once no new dead letter arrived for this `duration`")
			maxN := fs.Int("max", 1000, "read at most `N` dead letters")
			asJSON := fs.Bool("json", false, "list: print each dead letter as one JSON object a line")
			to := fs.String("to", "", "redrive: send to this `topic` (or recipient) instead of the original")
			receive := fs.Bool("receive", false, "list: where the broker cannot peek (RabbitMQ, SQS), read the letters by receiving and releasing them; raises their delivery counts")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) < 2 || len(args) > 3 {
					return usagef("want list|redrive|purge|delete TOPIC [GROUP], got %d arguments", len(args))
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
				if args[0] != "redrive" && *to != "" {
					return usagef("--to applies to redrive only")
				}
				if args[0] != "list" && *receive {
					return usagef("--receive applies to list only")
				}
				switch args[0] {
				case "list":
					return dlqList(ctx, e, g, topic, group, *wait, *maxN, *asJSON, *receive)
				case "redrive":
					return dlqRedrive(ctx, e, g, topic, group, *to, *wait, *maxN)
				case "purge", "delete":
					return dlqAdmin(ctx, e, g, args[0], topic, group)
				}
				return usagef("unknown dlq subcommand %q: want list, redrive, purge or delete", args[0])
			}
		},
	}
}

// errNoDeadLetters: the group or queue exists but its dead-letter queue
// does not: nothing was ever dead-lettered from it (a dead-letter queue is
// created by its first dead letter). Every dlq command treats it as an
// empty queue.
var errNoDeadLetters = errors.New("no dead letters")

// dlqOpen opens a client and checks that the dead-letter queue of topic
// and group exists, without creating anything. A missing dead-letter queue
// of a group or queue that exists is errNoDeadLetters (the client is
// closed); of one that does not exist either, ErrNotFound (exit code 6),
// so that a mistyped name is never an empty listing.
func dlqOpen(ctx context.Context, e *env, g *global, topic, group string) (*messaging.Client, string, messaging.QueueInfo, error) {
	c, err := openClient(ctx, e, g)
	if err != nil {
		return nil, "", messaging.QueueInfo{}, err
	}
	q := messaging.DeadLetterQueue(topic, group)
	info, err := c.Admin().Inspect(ctx, q, "")
	if err != nil {
		defer c.Close()
		if errors.Is(err, messaging.ErrNotFound) {
			of := "recipient or service queue " + topic
			if group != "" {
				of = "group " + group + " of topic " + topic
			}
			if _, serr := c.Admin().Inspect(ctx, topic, group); serr == nil {
				g.log.Info("no dead letters: nothing was ever dead-lettered", "from", of, "queue", q)
				return nil, q, info, errNoDeadLetters
			} else if !errors.Is(serr, messaging.ErrNotFound) {
				return nil, "", info, serr
			}
			// The adapter's text would name q again: say it once (the
			// broker error stays reachable with errors.As).
			return nil, "", info, &notFoundError{
				text: fmt.Sprintf("%s does not exist, nor its dead-letter queue %s (a name is mistyped?)", of, q),
				err:  err,
			}
		}
		return nil, "", info, err
	}
	return c, q, info, nil
}

func dlqAdmin(ctx context.Context, e *env, g *global, op, topic, group string) error {
	c, q, info, err := dlqOpen(ctx, e, g, topic, group)
	if errors.Is(err, errNoDeadLetters) {
		return nil
	}
	if err != nil {
		return err
	}
	defer c.Close()
	switch op {
	case "purge":
		err = c.Admin().Purge(ctx, q, "")
	case "delete":
		err = c.Admin().DeleteQueue(ctx, q)
	}
	if err != nil {
		return err
	}
	g.log.Info(op+"d dead-letter queue", "queue", q, "count", info.Messages)
	return nil
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

// listenDLQ listens on the dead-letter queue q, which exists. Its own
// dead letters go back to q (messaging does so for any queue named
// "*.dlq"; the option says it again), so no ".dlq.dlq" is declared.
func listenDLQ(ctx context.Context, c *messaging.Client, q string, maxInFlight int, keyOrder bool, h messaging.Handler) (*messaging.Subscription, error) {
	return c.Listen(ctx, q, h,
		messaging.WithDeadLetterQueue(q),
		messaging.WithRetry(holdRetry),
		messaging.WithMaxInFlight(maxInFlight),
		messaging.WithKeyOrdering(keyOrder))
}

func dlqList(ctx context.Context, e *env, g *global, topic, group string, wait time.Duration, maxN int, asJSON, receive bool) error {
	c, q, info, err := dlqOpen(ctx, e, g, topic, group)
	if errors.Is(err, errNoDeadLetters) {
		return nil
	}
	if err != nil {
		return err
	}
	msgs, err := c.Admin().Peek(ctx, q, "", maxN)
	if errors.Is(err, errors.ErrUnsupported) {
		if receive {
			return dlqReceive(ctx, e, g, c, q, wait, maxN, asJSON)
		}
		c.Close()
		g.log.Info("dead letters waiting; not shown", "queue", q, "count", info.Messages,
			"why", fmt.Sprintf("%s cannot read a message without raising its delivery count; --receive reads them that way", c.Capabilities().Name))
		return nil
	}
	if err != nil {
		c.Close()
		return err
	}
	p := &printer{w: e.stdout, json: asJSON}
	var printErr error
	for _, m := range msgs {
		dl, perr := messaging.ParseDeadLetter(m)
		if perr != nil {
			g.log.Warn("not a dead letter: no failure envelope", "id", m.ID, "error", perr)
			dl = nil
		}
		if err := p.print(m, dl); err != nil && printErr == nil {
			printErr = err
		}
	}
	if err := c.Close(); err != nil && printErr == nil {
		printErr = fmt.Errorf("close: %w", err)
	}
	g.log.Info("listed dead letters; left in the queue", "queue", q, "count", info.Messages, "shown", len(msgs))
	return printErr
}

// dlqReceive lists dead letters by receiving them (holding each until the
// end) and releasing them all: the brokers that cannot peek count these
// deliveries. The queue exists (dlqOpen), so nothing is declared.
func dlqReceive(ctx context.Context, e *env, g *global, c *messaging.Client, q string, wait time.Duration, maxN int, asJSON bool) error {
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
	sub, err := listenDLQ(ctx, c, q, maxN, false, h)
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
	g.log.Info("listed dead letters by receiving them; released to the queue, delivery counts raised", "queue", q, "count", min(n, maxN))
	return runErr
}

func dlqRedrive(ctx context.Context, e *env, g *global, topic, group, to string, wait time.Duration, maxN int) error {
	c, q, _, err := dlqOpen(ctx, e, g, topic, group)
	if errors.Is(err, errNoDeadLetters) {
		return nil
	}
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
			g.log.Warn("a dead-lettered request cannot be redriven; left in the queue", "id", m.ID, "service", dl.ReceivedFrom)
			return hold()
		}
		if !w.saw() {
			return hold()
		}
		dest := dl.ReceivedFrom
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
	sub, err := listenDLQ(ctx, c, q, 16, true, h)
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

// notFoundError says in its own words that something does not exist,
// without repeating the name the wrapped error (which matches
// messaging.ErrNotFound) gives again.
type notFoundError struct {
	text string
	err  error
}

func (e *notFoundError) Error() string { return e.text }
func (e *notFoundError) Unwrap() error { return e.err }
