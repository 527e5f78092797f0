package rabbitmq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// README: bad URLs fail with ErrInvalid. A port out of range is reported
// as ErrUnavailable (CLI exit 1, "broker unavailable"), and a parameter
// that url.Query cannot parse (a ';' or a bad %-escape) is silently
// dropped instead of being refused as unknown.
func TestURLBadPortAndMalformedParam(t *testing.T) {
	for _, raw := range []string{
		"amqp://guest:guest@127.0.0.1:99999/",
		"amqp://guest:guest@127.0.0.1:5672/?bogus=1;x",
		"amqp://guest:guest@127.0.0.1:5672/?prefetch=5%zz",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		tr, err := transport.Open(ctx, raw)
		cancel()
		if err == nil {
			tr.Close()
		}
		if !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", raw, err)
		}
	}
}

// transport.Open returns a non-nil Transport holding a nil *Transport when
// the rabbitmq opener fails; `if tr != nil { tr.Close() }` panics.
func TestOpenErrorReturnsNilTransport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	tr, err := transport.Open(ctx, "amqp://guest:guest@127.0.0.1:1/")
	if err == nil {
		tr.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	if tr != nil {
		t.Errorf("Open failed (%v) but returned a non-nil Transport %#v", err, tr)
	}
}
