package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// README: "Bad URLs ... fail with ErrInvalid naming what is accepted".
// A port out of range (or 0) is accepted, and Open waits for the whole
// context, failing with a timeout (CLI: exit 3 after --timeout, not 2).
func TestURLBadPortIsInvalid(t *testing.T) {
	for _, raw := range []string{"kafka://127.0.0.1:99999", "kafka://127.0.0.1:0", "kafka://127.0.0.1:-1"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		tr, err := transport.Open(ctx, raw)
		cancel()
		if err == nil {
			tr.Close()
		}
		if !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("Open(%q) after %v: %v, want ErrInvalid", raw, time.Since(start).Round(time.Millisecond), err)
		}
	}
}

// transport.Open returns a non-nil Transport holding a nil *kafka.Transport
// when the kafka opener fails: the usual `if tr != nil { tr.Close() }`
// panics (nil pointer dereference in (*Transport).Close).
func TestOpenErrorReturnsNilTransport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	tr, err := transport.Open(ctx, "kafka://127.0.0.1:1")
	if err == nil {
		tr.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	if tr != nil {
		t.Errorf("Open failed (%v) but returned a non-nil Transport %#v", err, tr)
	}
}
