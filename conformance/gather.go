package conformance

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// groupReply answers with "<group>:<request body>".
func groupReply(group string) messaging.ReplyHandler {
	return func(_ context.Context, req *messaging.Message) (*messaging.Message, error) {
		return &messaging.Message{Body: []byte(group + ":" + string(req.Body))}, nil
	}
}

func replyBodies(g *messaging.Gathered) []string {
	var out []string
	for _, m := range g.Replies {
		out = append(out, string(m.Body))
	}
	sort.Strings(out)
	return out
}

// gatherThreeResponders proves R19: Gather collects one reply from each
// responding group and returns as soon as the wanted count arrived.
func gatherThreeResponders(e *env) {
	topic := e.name("t")
	for _, g := range []string{"g1", "g2", "g3"} {
		e.respond(e.client(), topic, e.name(g), groupReply(g))
	}
	cli := e.client()
	got, err := cli.Gather(e.ctx, topic, msg("", "q"), messaging.WantReplies(3))
	if err != nil {
		e.Fatalf("Gather: %v", err)
	}
	if want := []string{"g1:q", "g2:q", "g3:q"}; !slices.Equal(replyBodies(got), want) || len(got.Errors) != 0 {
		e.Errorf("Gather replies %q, errors %v; want %q", replyBodies(got), got.Errors, want)
	}
	for _, m := range got.Replies {
		if m.CorrelationID == "" {
			e.Errorf("gathered reply %q has no correlation ID", m.Body)
		}
	}
}

// gatherSlowResponder proves R20: a responder slower than the gather's
// deadline is left out: Gather returns what arrived with ErrTimeout when a
// count was wanted, and the slow reply, arriving later, is dropped.
func gatherSlowResponder(e *env) {
	topic := e.name("t")
	e.respond(e.client(), topic, e.name("g1"), groupReply("g1"))
	e.respond(e.client(), topic, e.name("g2"), groupReply("g2"))
	slowClient := e.client()
	cli := e.client()
	gathered := e.gate()
	e.respond(slowClient, topic, e.name("g3"), func(ctx context.Context, req *messaging.Message) (*messaging.Message, error) {
		if string(req.Body) == "first" {
			gathered.wait(ctx)
		}
		return &messaging.Message{Body: []byte("g3:" + string(req.Body))}, nil
	})
	got, err := cli.Gather(e.ctx, topic, msg("", "first"), messaging.WantReplies(3), messaging.GatherTimeout(4*time.Second))
	gathered.open()
	if !errors.Is(err, messaging.ErrTimeout) {
		e.Errorf("Gather with a slow responder: error %v, want ErrTimeout", err)
	}
	if got == nil {
		e.Fatalf("Gather returned no result")
	}
	if want := []string{"g1:first", "g2:first"}; !slices.Equal(replyBodies(got), want) {
		e.Errorf("Gather replies %q, want %q", replyBodies(got), want)
	}
	// The slow reply to "first" now arrives; it must not join this gather.
	got, err = cli.Gather(e.ctx, topic, msg("", "second"), messaging.WantReplies(3))
	if err != nil {
		e.Fatalf("second Gather: %v", err)
	}
	for _, b := range replyBodies(got) {
		if !strings.HasSuffix(b, ":second") {
			e.Errorf("second Gather received %q, a reply to the first", b)
		}
	}
}

// gatherNoResponders proves R21: a gather with no responders returns no
// replies; it is an error (ErrTimeout) only when a count was wanted.
func gatherNoResponders(e *env) {
	cli := e.client()
	topic := e.name("t")
	got, err := cli.Gather(e.ctx, topic, msg("", "q"), messaging.GatherTimeout(300*time.Millisecond))
	if err != nil || got == nil || got.Count() != 0 {
		e.Errorf("Gather without responders: %v, %v; want no replies and no error", got, err)
	}
	got, err = cli.Gather(e.ctx, topic, msg("", "q"), messaging.WantReplies(1), messaging.GatherTimeout(300*time.Millisecond))
	if !errors.Is(err, messaging.ErrTimeout) || got == nil || got.Count() != 0 {
		e.Errorf("Gather wanting 1 reply without responders: %v, %v; want no replies and ErrTimeout", got, err)
	}
}

// gatherResponderErrors proves R19 and R13: responders' errors are
// gathered as *RemoteError values with their codes, beside the replies.
func gatherResponderErrors(e *env) {
	topic := e.name("t")
	e.respond(e.client(), topic, e.name("ok"), groupReply("ok"))
	e.respond(e.client(), topic, e.name("bad"), func(context.Context, *messaging.Message) (*messaging.Message, error) {
		return nil, messaging.WithCode(errors.New("declined"), "E7")
	})
	got, err := e.client().Gather(e.ctx, topic, msg("", "q"), messaging.WantReplies(2))
	if err != nil {
		e.Fatalf("Gather: %v", err)
	}
	if len(got.Replies) != 1 || string(got.Replies[0].Body) != "ok:q" {
		e.Errorf("replies %q, want [ok:q]", replyBodies(got))
	}
	if len(got.Errors) != 1 || got.Errors[0].Message != "declined" || got.Errors[0].Code != "E7" || got.Errors[0].Service != topic {
		e.Errorf("errors %+v, want one RemoteError declined/E7 from %s", got.Errors, topic)
	}
}
