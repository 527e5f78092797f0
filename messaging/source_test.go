package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchboard-go/switchboard/messaging"
)

// The CloudEvents source: set per client with WithSource (or per message
// with Message.Source); a received message keeps the source it was sent
// with, also when published again.
func ExampleWithSource() {
	ctx := context.Background()
	c, err := messaging.Open(ctx, "mem://", messaging.WithSource("https://example.com/orders"))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	got := make(chan *messaging.Message, 2)
	_, err = c.Subscribe(ctx, "orders", "audit", func(_ context.Context, m *messaging.Message) error {
		got <- m
		return nil
	})
	if err != nil {
		panic(err)
	}
	_ = c.Publish(ctx, "orders", &messaging.Message{ID: "o-1", Body: []byte("{}")})
	_ = c.Publish(ctx, "orders", &messaging.Message{ID: "o-2", Source: "urn:legacy:orders", Body: []byte("{}")})
	for range 2 {
		m := <-got
		fmt.Println(m.ID, m.Source)
	}
	// Unordered output:
	// o-1 https://example.com/orders
	// o-2 urn:legacy:orders
}

func TestWithSourceInvalid(t *testing.T) {
	for _, s := range []string{"", "a\x00b", "bad\xff", "http://[::1"} {
		c, err := messaging.Open(context.Background(), "mem://", messaging.WithSource(s))
		if !errors.Is(err, messaging.ErrInvalid) {
			if c != nil {
				c.Close()
			}
			t.Errorf("WithSource(%q): %v; want ErrInvalid", s, err)
		}
	}
}

// TestDefaultSource: SWITCHBOARD_SOURCE, then OTEL_SERVICE_NAME, then the
// executable's name (R81).
func TestDefaultSource(t *testing.T) {
	exe, _ := os.Executable()
	for _, c := range []struct{ sb, otel, want string }{
		{"urn:sb", "otel-svc", "urn:sb"},
		{"", "otel-svc", "otel-svc"},
		{"", "", filepath.Base(exe)},
		{"bad source with a space\t", "otel-svc", "otel-svc"},
	} {
		t.Setenv(messaging.EnvSource, c.sb)
		t.Setenv("OTEL_SERVICE_NAME", c.otel)
		cl, err := messaging.Open(context.Background(), "mem://")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		ctx := context.Background()
		if _, err := cl.Subscribe(ctx, "t", "g", func(_ context.Context, m *messaging.Message) error { got <- m.Source; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := cl.Publish(ctx, "t", &messaging.Message{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != c.want {
			t.Errorf("SWITCHBOARD_SOURCE=%q OTEL_SERVICE_NAME=%q: source %q, want %q", c.sb, c.otel, s, c.want)
		}
		cl.Close()
	}
}

func TestReservedWireHeaderNamed(t *testing.T) {
	c, err := messaging.Open(context.Background(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Publish(context.Background(), "t", &messaging.Message{Headers: map[string]string{"ce_id": "x"}})
	if !errors.Is(err, messaging.ErrInvalid) || !strings.Contains(err.Error(), `"ce_id"`) {
		t.Fatalf("Publish with header ce_id: %v", err)
	}
}
