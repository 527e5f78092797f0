// Package wiretest holds test helpers shared by the adapters' wire tests:
// what a received foreign message must allow (SEMANTICS.md, R85).
package wiretest

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"

	"github.com/switchboard-go/switchboard/messaging"
)

// Republish subscribes group g of topic with a handler that publishes each
// received message, as it is, to topic+"-again", then fails it
// permanently, so that it is dead-lettered to topic+"-dlq"; a listener of
// that queue parses the dead letter and publishes its Original, as it is,
// to topic+"-redriven". Send the foreign message after Republish returns;
// the returned function waits for it and returns it as first received,
// as received again after republishing, and as received after the
// redrive. Every Publish must succeed: a received message can always be
// published again and redriven. ID and Source, when the first message has
// them, headers, Type and body must arrive unchanged.
func Republish(t *testing.T, ctx context.Context, c *messaging.Client, topic string) func() (first, again, redriven *messaging.Message) {
	t.Helper()
	type result struct {
		m   *messaging.Message
		err error
	}
	firstCh, againCh, redrivenCh := make(chan result, 8), make(chan result, 8), make(chan result, 8)
	sub := func(topic, group string, h messaging.Handler, opts ...messaging.SubscribeOption) {
		t.Helper()
		s, err := c.Subscribe(ctx, topic, group, h, opts...)
		if err != nil {
			t.Fatalf("Subscribe %s: %v", topic, err)
		}
		t.Cleanup(func() { s.Close() })
	}
	var once sync.Once
	sub(topic, "g", func(ctx context.Context, m *messaging.Message) error {
		err := c.Publish(ctx, topic+"-again", m)
		once.Do(func() { firstCh <- result{m, err} })
		return messaging.Permanent(errors.New("wiretest: dead-letter it"))
	}, messaging.WithDeadLetterQueue(topic+"-dlq"), messaging.WithMaxAttempts(1))
	sub(topic+"-again", "g", func(_ context.Context, m *messaging.Message) error {
		againCh <- result{m, nil}
		return nil
	})
	sub(topic+"-redriven", "g", func(_ context.Context, m *messaging.Message) error {
		redrivenCh <- result{m, nil}
		return nil
	})
	l, err := c.Listen(ctx, topic+"-dlq", func(ctx context.Context, m *messaging.Message) error {
		dl, err := messaging.ParseDeadLetter(m)
		if err == nil {
			err = c.Publish(ctx, topic+"-redriven", dl.Original)
		}
		if err != nil {
			redrivenCh <- result{nil, err}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	get := func(what string, ch chan result) *messaging.Message {
		t.Helper()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("%s: %v", what, r.err)
			}
			return r.m
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		}
		return nil
	}
	return func() (first, again, redriven *messaging.Message) {
		t.Helper()
		first = get("receive and republish", firstCh)
		again = get("receive the republished message", againCh)
		redriven = get("redrive the dead letter", redrivenCh)
		for what, m := range map[string]*messaging.Message{"republished": again, "redriven": redriven} {
			if (first.ID != "" && m.ID != first.ID) || (first.Source != "" && m.Source != first.Source) || m.Type != first.Type || !maps.Equal(m.Headers, first.Headers) || string(m.Body) != string(first.Body) {
				t.Errorf("%s message differs from the received one:\n got %+v\nwant %+v", what, m, first)
			}
		}
		return first, again, redriven
	}
}
