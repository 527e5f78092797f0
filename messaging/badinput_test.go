package messaging_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/messaging"
)

// TestHostileInput answers each hostile input with a typed error, never a
// panic.
func TestHostileInput(t *testing.T) {
	ctx := context.Background()
	b, _ := inmem.NewBroker(inmem.WithMaxMessageSize(1 << 10))
	c, err := messaging.New(b.Transport())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := func(context.Context, *messaging.Message) error { return nil }
	rh := func(context.Context, *messaging.Message) (*messaging.Message, error) { return nil, nil }
	huge := map[string]string{"big": strings.Repeat("x", messaging.MaxHeadersSize+1)}
	many := map[string]string{}
	for i := 0; i < 5000; i++ {
		many[strings.Repeat("h", 1+i%200)+string(rune('a'+i%26))+string(rune('a'+i/26%26))] = "v"
	}
	msg := func(m messaging.Message) *messaging.Message { return &m }
	cases := []struct {
		name string
		want error
		call func() error
	}{
		{"empty topic", messaging.ErrInvalid, func() error { return c.Publish(ctx, "", msg(messaging.Message{})) }},
		{"topic with space", messaging.ErrInvalid, func() error { return c.Publish(ctx, "a b", msg(messaging.Message{})) }},
		{"topic with slash", messaging.ErrInvalid, func() error { return c.Publish(ctx, "a/b", msg(messaging.Message{})) }},
		{"topic starting with dot", messaging.ErrInvalid, func() error { return c.Publish(ctx, ".a", msg(messaging.Message{})) }},
		{"topic too long", messaging.ErrInvalid, func() error { return c.Publish(ctx, strings.Repeat("a", 129), msg(messaging.Message{})) }},
		{"topic invalid UTF-8", messaging.ErrInvalid, func() error { return c.Publish(ctx, "a\xff", msg(messaging.Message{})) }},
		{"nil message", messaging.ErrInvalid, func() error { return c.Publish(ctx, "t", nil) }},
		{"reserved header", messaging.ErrInvalid, func() error {
			return c.Publish(ctx, "t", msg(messaging.Message{Headers: map[string]string{"sb-x": "1"}}))
		}},
		{"reserved header, upper case", messaging.ErrInvalid, func() error {
			return c.Publish(ctx, "t", msg(messaging.Message{Headers: map[string]string{"SB-X": "1"}}))
		}},
		{"empty header name", messaging.ErrInvalid, func() error { return c.Publish(ctx, "t", msg(messaging.Message{Headers: map[string]string{"": "1"}})) }},
		{"invalid UTF-8 header name", messaging.ErrInvalid, func() error {
			return c.Publish(ctx, "t", msg(messaging.Message{Headers: map[string]string{"a\xff": "1"}}))
		}},
		{"invalid UTF-8 header value", messaging.ErrInvalid, func() error {
			return c.Publish(ctx, "t", msg(messaging.Message{Headers: map[string]string{"a": "\xff"}}))
		}},
		{"huge header", messaging.ErrMessageTooLarge, func() error { return c.Publish(ctx, "t", msg(messaging.Message{Headers: huge})) }},
		{"too many headers", messaging.ErrMessageTooLarge, func() error { return c.Publish(ctx, "t", msg(messaging.Message{Headers: many})) }},
		{"body over the transport limit", messaging.ErrMessageTooLarge, func() error { return c.Publish(ctx, "t", msg(messaging.Message{Body: make([]byte, 2<<10)})) }},
		{"nil handler", messaging.ErrInvalid, func() error { _, err := c.Subscribe(ctx, "t", "g", nil); return err }},
		{"nil reply handler", messaging.ErrInvalid, func() error { _, err := c.Serve(ctx, "s", nil); return err }},
		{"empty group", messaging.ErrInvalid, func() error { _, err := c.Subscribe(ctx, "t", "", h); return err }},
		{"zero max in flight", messaging.ErrInvalid, func() error { _, err := c.Subscribe(ctx, "t", "g", h, messaging.WithMaxInFlight(0)); return err }},
		{"negative max in flight", messaging.ErrInvalid, func() error { _, err := c.Subscribe(ctx, "t", "g", h, messaging.WithMaxInFlight(-1)); return err }},
		{"zero attempts", messaging.ErrInvalid, func() error { _, err := c.Subscribe(ctx, "t", "g", h, messaging.WithMaxAttempts(0)); return err }},
		{"negative backoff", messaging.ErrInvalid, func() error {
			_, err := c.Subscribe(ctx, "t", "g", h, messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 1, InitialBackoff: -1}))
			return err
		}},
		{"jitter above 1", messaging.ErrInvalid, func() error {
			_, err := c.Subscribe(ctx, "t", "g", h, messaging.WithRetry(messaging.RetryPolicy{MaxAttempts: 1, InitialBackoff: 1, MaxBackoff: 1, Multiplier: 1, Jitter: 2}))
			return err
		}},
		{"bad dead-letter queue name", messaging.ErrInvalid, func() error {
			_, err := c.Respond(ctx, "t", "g", rh, messaging.WithDeadLetterQueue("no way"))
			return err
		}},
		{"negative wanted replies", messaging.ErrInvalid, func() error {
			_, err := c.Gather(ctx, "t", msg(messaging.Message{}), messaging.WantReplies(-1))
			return err
		}},
		{"zero gather timeout", messaging.ErrInvalid, func() error {
			_, err := c.Gather(ctx, "t", msg(messaging.Message{}), messaging.GatherTimeout(0))
			return err
		}},
		{"zero drain timeout", messaging.ErrInvalid, func() error { _, err := messaging.New(b.Transport(), messaging.WithDrainTimeout(0)); return err }},
		{"negative request timeout", messaging.ErrInvalid, func() error {
			_, err := messaging.New(b.Transport(), messaging.WithRequestTimeout(-time.Second))
			return err
		}},
		{"nil logger", messaging.ErrInvalid, func() error { _, err := messaging.New(b.Transport(), messaging.WithLogger(nil)); return err }},
		{"nil transport", messaging.ErrInvalid, func() error { _, err := messaging.New(nil); return err }},
		{"bad default subscribe option", messaging.ErrInvalid, func() error {
			_, err := messaging.New(b.Transport(), messaging.WithSubscribeDefaults(messaging.WithMaxInFlight(-5)))
			return err
		}},
		{"unknown scheme", messaging.ErrInvalid, func() error { _, err := messaging.Open(ctx, "carrier-pigeon://loft"); return err }},
		{"parse envelope of a plain message", messaging.ErrInvalid, func() error { _, err := messaging.ParseDeadLetter(msg(messaging.Message{})); return err }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panicked: %v", r)
					}
				}()
				err = tc.call()
			}()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v; want an error matching %v", err, tc.want)
			}
		})
	}
}
