package messaging

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/transport"
)

// The failure envelope travels as reserved headers on the dead letter,
// whose body, key, type, content type and application headers are the
// original message's, unchanged.
const (
	dlqTopic    = hdrDLQ + "topic"
	dlqGroup    = hdrDLQ + "group"
	dlqAttempts = hdrDLQ + "attempts"
	dlqError    = hdrDLQ + "error"
	dlqFirst    = hdrDLQ + "first-failure"
	dlqLast     = hdrDLQ + "last-failure"
	dlqPerm     = hdrDLQ + "permanent"
	// dlqTruncated lists what was cut to make the dead letter fit the
	// transport's limits: "error", "headers", "body", comma-separated.
	dlqTruncated = hdrDLQ + "truncated"
)

// What may be cut from a dead letter to make it fit the transport's limits,
// in the order it is cut: the values of DeadLetter.Truncated (see
// SEMANTICS.md, R63).
const (
	// TruncatedError: the error text was shortened.
	TruncatedError = "error"
	// TruncatedHeaders: some or all of the original message's headers
	// were dropped, the largest first.
	TruncatedHeaders = "headers"
	// TruncatedBody: the body was cut short (its first bytes kept).
	TruncatedBody = "body"
)

// minErrorText is the error text shrinkDeadLetter keeps while it can cut
// something else.
const minErrorText = 256

// maxErrorText bounds the error text kept in a failure envelope.
const maxErrorText = 4 << 10

// DeadLetter is the failure envelope of a dead-lettered message.
type DeadLetter struct {
	// ReceivedFrom is the topic, recipient or service the message was
	// consumed from (Message.ReceivedFrom of the failed delivery).
	ReceivedFrom string
	// Group is the consumer group, empty for a queue.
	Group string
	// LastAttempt is the delivery attempt of the last handler call (see
	// Message.Attempt; at most MaxAttempts, less for a Permanent error). For a crash loop (a delivery over MaxAttempts,
	// dead-lettered without calling the handler) it is the number of
	// earlier deliveries, whose members stopped without settling it.
	LastAttempt int
	// LastError is the text of the handler's last error (at most 4 KiB,
	// less when cut to fit: see Truncated). For a crash loop it says that
	// the delivery was over MaxAttempts and the handler was not called.
	LastError string
	// Permanent reports that the last error was marked Permanent.
	Permanent bool
	// FirstFailure and LastFailure are when the handler first and last
	// failed; for a crash loop, both are when the loop was detected.
	FirstFailure, LastFailure time.Time
	// Original is the message as it was published: its ID, key, body,
	// headers and envelope fields, without the failure envelope. Publish
	// it again to redrive it (unless Truncated says its body or headers
	// were cut).
	Original *Message
	// Truncated lists what was cut to make the dead letter fit the
	// transport's MaxMessageSize and MaxHeaders, in this order:
	// TruncatedError, TruncatedHeaders, TruncatedBody. It is empty when
	// nothing was cut. It travels as the reserved header
	// sb-dlq-truncated.
	Truncated []string
}

func newDeadLetterMessage(tm *transport.Message, source, group string, cause error, attempts int, first, last time.Time) *transport.Message {
	if _, ok := tm.Headers[dlqTopic]; ok {
		// Already a dead letter (its dead-letter queue's consumer failed
		// on it): it keeps the envelope that names its origin (R94).
		dl := *tm
		dl.DeliveryCount, dl.AckID, dl.AsFunc = 0, nil, nil
		return &dl
	}
	h := make(map[string]string, len(tm.Headers)+7)
	for k, v := range tm.Headers {
		h[k] = v
	}
	text := cause.Error()
	if len(text) > maxErrorText {
		text = text[:maxErrorText]
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	h[dlqTopic] = source
	if group != "" {
		h[dlqGroup] = group
	}
	h[dlqAttempts] = strconv.Itoa(attempts)
	h[dlqError] = text
	h[dlqFirst] = first.UTC().Format(time.RFC3339Nano)
	h[dlqLast] = last.UTC().Format(time.RFC3339Nano)
	if IsPermanent(cause) {
		h[dlqPerm] = "true"
	}
	dl := *tm
	dl.Headers = h
	dl.DeliveryCount, dl.AckID, dl.AsFunc = 0, nil, nil
	return &dl
}

// ParseDeadLetter reads the failure envelope of a message received from a
// dead-letter queue. It fails with ErrInvalid when m carries no valid
// envelope.
func ParseDeadLetter(m *Message) (*DeadLetter, error) {
	if m == nil {
		return nil, invalid("nil message")
	}
	h := m.reserved
	topic, ok := h[dlqTopic]
	if !ok {
		return nil, invalid("message %s carries no failure envelope (no %s header)", m.ID, dlqTopic)
	}
	attempts, err := strconv.Atoi(h[dlqAttempts])
	if err != nil || attempts < 1 {
		return nil, invalid("failure envelope of %s: attempts %q is not a positive number", m.ID, h[dlqAttempts])
	}
	first, err := time.Parse(time.RFC3339Nano, h[dlqFirst])
	if err != nil {
		return nil, invalid("failure envelope of %s: first failure time %q: %v", m.ID, h[dlqFirst], err)
	}
	last, err := time.Parse(time.RFC3339Nano, h[dlqLast])
	if err != nil {
		return nil, invalid("failure envelope of %s: last failure time %q: %v", m.ID, h[dlqLast], err)
	}
	orig := *m
	orig.ReceivedFrom, orig.Attempt, orig.reserved, orig.asFunc = "", 0, nil, nil
	var truncated []string
	if v := h[dlqTruncated]; v != "" {
		truncated = strings.Split(v, ",")
	}
	return &DeadLetter{
		Truncated:    truncated,
		ReceivedFrom: topic,
		Group:        h[dlqGroup],
		LastAttempt:  attempts,
		LastError:    h[dlqError],
		Permanent:    h[dlqPerm] == "true",
		FirstFailure: first,
		LastFailure:  last,
		Original:     &orig,
	}, nil
}

// fits reports whether m is within the transport's limits.
func fits(m *transport.Message, caps transport.Capabilities) bool {
	return (caps.MaxMessageSize <= 0 || m.Size() <= caps.MaxMessageSize) &&
		(caps.MaxHeaders <= 0 || len(m.Headers) <= caps.MaxHeaders)
}

// shrinkDeadLetter makes the dead letter dl fit the transport's
// MaxMessageSize and MaxHeaders, cutting as little as it can, in this
// order, each only while dl does not fit:
//
//  1. the error text, down to 256 bytes;
//  2. the original message's headers (everything but the failure
//     envelope: application headers, trace context, other reserved
//     headers), the largest first;
//  3. the body, keeping its first bytes;
//  4. the rest of the error text.
//
// It records what it cut in the reserved header sb-dlq-truncated (see
// DeadLetter.Truncated) and returns it. The envelope's other headers, the
// ID, key, type, version, content type and time are never cut: when dl
// does not fit without them, shrinkDeadLetter fails with an error
// matching ErrMessageTooLarge. dl's Body is resliced, never written to.
func shrinkDeadLetter(dl *transport.Message, caps transport.Capabilities) ([]string, error) {
	if fits(dl, caps) {
		return nil, nil
	}
	// Room for the sb-dlq-truncated header itself, at its longest.
	reserve := len(dlqTruncated) + len(TruncatedError+","+TruncatedHeaders+","+TruncatedBody)
	over := func() int {
		if caps.MaxMessageSize <= 0 {
			return 0
		}
		return dl.Size() + reserve - caps.MaxMessageSize
	}
	tooMany := func() bool { return caps.MaxHeaders > 0 && len(dl.Headers)+1 > caps.MaxHeaders }
	cut := map[string]bool{}
	cutError := func(floor int) {
		text := dl.Headers[dlqError]
		if n := over(); n > 0 && len(text) > floor {
			dl.Headers[dlqError] = truncateUTF8(text, max(floor, len(text)-n))
			cut[TruncatedError] = true
		}
	}
	cutError(minErrorText)
	if over() > 0 || tooMany() {
		names := make([]string, 0, len(dl.Headers))
		for k := range dl.Headers {
			if !strings.HasPrefix(k, hdrDLQ) {
				names = append(names, k)
			}
		}
		slices.SortFunc(names, func(a, b string) int {
			if c := cmp.Compare(len(b)+len(dl.Headers[b]), len(a)+len(dl.Headers[a])); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		for _, k := range names {
			if over() <= 0 && !tooMany() {
				break
			}
			delete(dl.Headers, k)
			cut[TruncatedHeaders] = true
		}
	}
	if n := over(); n > 0 && len(dl.Body) > 0 {
		keep := max(0, len(dl.Body)-n)
		dl.Body = dl.Body[:keep:keep]
		cut[TruncatedBody] = true
	}
	cutError(0)
	var what []string
	for _, w := range []string{TruncatedError, TruncatedHeaders, TruncatedBody} {
		if cut[w] {
			what = append(what, w)
		}
	}
	if len(what) > 0 {
		dl.Headers[dlqTruncated] = strings.Join(what, ",")
	}
	if !fits(dl, caps) {
		return what, errorf(ErrMessageTooLarge, "the dead letter of %s does not fit %s's limits (%d bytes, %d headers) even with its error text, headers and body cut: it is %d bytes with %d headers",
			dl.ID, caps.Name, caps.MaxMessageSize, caps.MaxHeaders, dl.Size(), len(dl.Headers))
	}
	return what, nil
}

// truncateUTF8 returns at most n bytes of s, cut at a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
