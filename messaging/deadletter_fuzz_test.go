package messaging

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

// FuzzParseDeadLetter feeds arbitrary envelope headers to ParseDeadLetter
// (it must fail with ErrInvalid or succeed, never panic), and checks that
// an envelope written by newDeadLetterMessage always parses back.
func FuzzParseDeadLetter(f *testing.F) {
	f.Add("orders", "billing", "3", "boom", "2026-01-02T03:04:05Z", "2026-01-02T03:04:06.5Z", "x", "y", 2)
	f.Add("", "", "-1", "", "yesterday", "", "sb-dlq-topic", "t", 0)
	f.Add("t", "", "999999999999999999999", "\xff", "2026-13-02T03:04:05Z", "0001-01-01T00:00:00Z", "", "", 1)
	f.Fuzz(func(t *testing.T, topic, group, attempts, errText, first, last, hk, hv string, n int) {
		h := map[string]string{
			dlqTopic: topic, dlqGroup: group, dlqAttempts: attempts, dlqError: errText,
			dlqFirst: first, dlqLast: last, hk: hv,
		}
		dl, err := ParseDeadLetter(fromTransport(&transport.Message{ID: "m", Headers: h}, "q"))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		} else if dl.LastAttempt < 1 || dl.Original == nil {
			t.Fatalf("bad envelope accepted: %+v", dl)
		}

		// Round trip from the writer.
		if n < 1 {
			n = 1
		}
		orig := &transport.Message{ID: "id", Key: "k", Body: []byte(errText), Headers: map[string]string{}}
		if hk != "" && !isReserved(hk) {
			orig.Headers[hk] = hv
		}
		t0 := time.Unix(1700000000, 123456789)
		dm := newDeadLetterMessage(orig, topic, group, errors.New(errText), n, t0, t0.Add(time.Second))
		dl, err = ParseDeadLetter(fromTransport(dm, "dlq"))
		if err != nil {
			t.Fatalf("own envelope does not parse: %v", err)
		}
		wantErr := strings.ToValidUTF8(errText, "\uFFFD")
		if len(errText) > maxErrorText {
			wantErr = strings.ToValidUTF8(errText[:maxErrorText], "\uFFFD")
		}
		if dl.ReceivedFrom != topic || dl.Group != group || dl.LastAttempt != n || dl.LastError != wantErr ||
			!dl.FirstFailure.Equal(t0) || !dl.LastFailure.Equal(t0.Add(time.Second)) ||
			string(dl.Original.Body) != errText || len(dl.Original.Headers) != len(orig.Headers) {
			t.Fatalf("round trip: %+v", dl)
		}
	})
}
