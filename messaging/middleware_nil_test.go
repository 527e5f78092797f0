package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/messaging"
)

// WithMiddleware(nil) (a nil Middleware, e.g. from a constructor that
// returned (nil, err) with the error ignored) panics inside Subscribe
// with a nil pointer dereference; every other bad option is ErrInvalid.
func TestNilMiddleware(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := messaging.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := func(context.Context, *messaging.Message) error { return nil }
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"Subscribe", func() error {
			_, err := c.Subscribe(ctx, "t", "g", h, messaging.WithMiddleware(nil))
			return err
		}},
		{"Publish with WithSendMiddleware(nil)", func() error {
			c2, err := messaging.Open(ctx, "mem://", messaging.WithSendMiddleware(nil))
			if err != nil {
				return err
			}
			defer c2.Close()
			return c2.Publish(ctx, "t", &messaging.Message{})
		}},
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s: panic: %v", tc.name, r)
				}
			}()
			if err := tc.f(); !errors.Is(err, messaging.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
			}
		}()
	}
}
