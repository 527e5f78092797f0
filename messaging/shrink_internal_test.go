package messaging

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/transport"
)

func TestShrinkDeadLetter(t *testing.T) {
	now := time.Now()
	orig := &transport.Message{ID: "id", Key: "k", Body: []byte(strings.Repeat("b", 500)), Headers: map[string]string{}}
	for i := range 20 {
		orig.Headers[fmt.Sprintf("h%02d", i)] = strings.Repeat("v", i)
	}
	cause := errors.New(strings.Repeat("é", 1000)) // 2,000 bytes, 2-byte runes
	for _, tc := range []struct {
		name    string
		caps    transport.Capabilities
		wantCut []string
		wantErr bool
	}{
		{"Fits", transport.Capabilities{MaxMessageSize: 10000, MaxHeaders: 100}, nil, false},
		{"TooManyHeaders", transport.Capabilities{MaxHeaders: 20}, []string{TruncatedHeaders}, false},
		{"ErrorOnly", transport.Capabilities{MaxMessageSize: 2800}, []string{TruncatedError}, false},
		{"ErrorAndHeaders", transport.Capabilities{MaxMessageSize: 1200}, []string{TruncatedError, TruncatedHeaders}, false},
		{"Everything", transport.Capabilities{MaxMessageSize: 500}, []string{TruncatedError, TruncatedHeaders, TruncatedBody}, false},
		{"EnvelopeTooLarge", transport.Capabilities{MaxMessageSize: 100}, []string{TruncatedError, TruncatedHeaders, TruncatedBody}, true},
		{"EnvelopeHasTooManyHeaders", transport.Capabilities{MaxHeaders: 5}, []string{TruncatedHeaders}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dl := newDeadLetterMessage(orig, "topic", "group", Permanent(cause), 1, now, now)
			cut, err := shrinkDeadLetter(dl, tc.caps)
			if !slices.Equal(cut, tc.wantCut) {
				t.Errorf("cut %v, want %v", cut, tc.wantCut)
			}
			if tc.wantErr {
				if !errors.Is(err, ErrMessageTooLarge) {
					t.Errorf("error %v, want ErrMessageTooLarge", err)
				}
				return
			}
			if err != nil || !fits(dl, tc.caps) {
				t.Fatalf("%v; size %d, headers %d", err, dl.Size(), len(dl.Headers))
			}
			if !utf8.ValidString(dl.Headers[dlqError]) {
				t.Errorf("error text cut inside a rune")
			}
			if len(orig.Body) != 500 || len(orig.Headers) != 20 {
				t.Errorf("the original message was modified")
			}
			if got := dl.Headers[dlqTruncated]; got != strings.Join(tc.wantCut, ",") {
				t.Errorf("%s = %q", dlqTruncated, got)
			}
			for _, h := range []string{dlqTopic, dlqGroup, dlqAttempts, dlqFirst, dlqLast, dlqPerm} {
				if _, ok := dl.Headers[h]; !ok {
					t.Errorf("envelope header %s cut", h)
				}
			}
		})
	}
}
