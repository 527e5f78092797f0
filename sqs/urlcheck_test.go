package sqs_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// README: bad URLs fail with ErrInvalid. A region that is not a region
// name, or an endpoint port out of range, is accepted by Open; the first
// Publish then fails with a runtime error (CLI exit 1, not 2).
func TestURLBadRegionAndPort(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	for _, raw := range []string{
		"sqs://?region=not%20a%20region&endpoint=http://127.0.0.1:4566",
		"sqs://?region=us-east-1&endpoint=http://127.0.0.1:99999",
		"sqs://127.0.0.1:0?region=us-east-1",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		tr, err := transport.Open(ctx, raw)
		if err == nil {
			err = tr.Send(ctx, transport.Topic("break-url"), []*transport.Message{{ID: "1", Body: []byte("x")}})
			tr.Close()
		}
		cancel()
		if !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", raw, err)
		}
	}
}
