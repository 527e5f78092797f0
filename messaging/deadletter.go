package messaging

import (
	"strconv"
	"strings"
	"time"

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
)

// maxErrorText bounds the error text kept in a failure envelope.
const maxErrorText = 4 << 10

// DeadLetter is the failure envelope of a dead-lettered message.
type DeadLetter struct {
	// Topic is the topic, recipient or service the message was consumed
	// from.
	Topic string
	// Group is the consumer group, empty for a queue.
	Group string
	// Attempts is the delivery attempt of the last handler call (see
	// Message.Attempt).
	Attempts int
	// LastError is the text of the handler's last error.
	LastError string
	// Permanent reports that the last error was marked Permanent.
	Permanent bool
	// FirstFailure and LastFailure are when the handler first and last
	// failed.
	FirstFailure, LastFailure time.Time
	// Original is the message as it was published: its ID, key, body,
	// headers and envelope fields, without the failure envelope. Publish
	// it again to redrive it.
	Original *Message
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
	orig.Topic, orig.Attempt, orig.reserved, orig.asFunc = "", 0, nil, nil
	return &DeadLetter{
		Topic:        topic,
		Group:        h[dlqGroup],
		Attempts:     attempts,
		LastError:    h[dlqError],
		Permanent:    h[dlqPerm] == "true",
		FirstFailure: first,
		LastFailure:  last,
		Original:     &orig,
	}, nil
}
