package messaging

import (
	"maps"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/transport"
)

// Message is a message sent or received through a Client.
//
// When sending, only Body is required; ID and Time are filled in when
// empty. The caller must not modify a message, its Headers or its Body
// while a call that sends it is running.
type Message struct {
	// ID identifies the message, stable across redeliveries. A UUID is
	// generated when empty.
	ID string
	// Key orders messages: a consumer handles messages with the same
	// non-empty key one at a time, in the order they were published.
	Key string
	// Headers are application headers. Names must be valid UTF-8, not
	// empty, must not begin with the reserved prefix "sb-", and must not
	// be names of the wire mapping (ce_*, ce-*, cloudEvents_*,
	// cloudEvents:*, content-type in any case, adapter headers: see
	// transport.ReservedHeaderName); values must be valid UTF-8. On a
	// received message, a header that breaks these rules (a foreign
	// producer's) is delivered escaped by transport.EscapeHeader, so that
	// the message can always be published again.
	Headers map[string]string
	// Body is the payload; it may be empty. On a received message it is
	// read-only: it may be shared with redeliveries and, on some
	// transports, with other groups. Copy it before changing it.
	Body []byte
	// ContentType is the MIME type of Body, for example
	// "application/json".
	ContentType string
	// Source is the CloudEvents source: the context in which the message
	// was created, a URI-reference such as "orders-api" or
	// "https://example.com/orders". The client's source (WithSource) when
	// empty. With ID it is the message's identity: a received message
	// published again keeps both.
	Source string
	// Type names the kind of message, for example "order.created". On
	// the wire, a message without a type carries the CloudEvents type
	// transport.DefaultType, read back as "".
	Type string
	// Version is the version of Type's schema, for example "2".
	Version string
	// Time is when the message was created; now when zero.
	Time time.Time
	// CorrelationID ties a reply to its request. Set by Request and
	// Gather on requests; copied onto replies.
	CorrelationID string
	// ReplyTo is the address replies go to. Set by Request and Gather.
	ReplyTo string
	// DeliverAt, when in the future, delays the message: Publish and
	// Notify accept it at once, and no handler receives it before this
	// time (R114); it is handed over promptly once due (R116). Zero, or a
	// time not after the send, means now (R117). At most MaxDelay (7 days)
	// ahead, or the send fails with an error matching ErrInvalid (R115).
	// Request, RequestAsync, Gather and replies refuse a future DeliverAt
	// with ErrInvalid. A delayed message's Key orders it among the
	// key's other messages by due time, then publish order (R121).
	//
	// On a received message it is the due time the message was published
	// with, or zero when it was not delayed.
	//
	// Where the transport has no native delay as long
	// (transport.Capabilities.MaxDelay: Kafka, RabbitMQ and SQS have
	// none, the in-memory broker has 7 days), the message waits in the
	// durable queue DelayQueue(topic or recipient) and the clients that
	// consume the topic or recipient (Subscribe, Listen) forward it when
	// due, so that a client that only publishes may exit at once (R118).
	DeliverAt time.Time

	// ReceivedFrom is, on a received message, where it was received
	// from, as the subscription named it: a topic (Subscribe, Respond),
	// a recipient (Listen: the recipient's name, or a dead-letter
	// queue's name when listening on one) or a service (Serve: the
	// service's name, not its queue "<service>.rpc"); on a message
	// returned by Admin.Peek, the name peeked at. It is ignored when
	// sending. (It was called Topic before v0.2.0.)
	ReceivedFrom string
	// Attempt is, on a received message, which delivery attempt this
	// handler call is: 1 the first time, 2 on the first retry, and so on.
	// Where the broker reports delivery counts (see
	// transport.Capabilities.DeliveryCount), the first call of a delivery
	// has the broker's count, so earlier deliveries to other members of
	// the group count too, once each: one released at a graceful shutdown
	// (waiting to retry, queued behind its key, or interrupted) and one
	// lost with a crashed member each raise it by exactly one. Elsewhere
	// the count starts again at 1 when another consumer gets the message.
	// A delivery whose count is over the RetryPolicy's MaxAttempts is
	// dead-lettered without calling the handler (a crash loop).
	Attempt int
	// Responder is, on a reply, who sent it: the consumer group of the
	// Respond that answered a Gather, or the service of the Serve that
	// answered a Request. It travels as the reserved header sb-responder;
	// it is empty on other messages and on replies from responders that
	// are not Switchboard.
	Responder string

	asFunc   func(any) bool
	reserved map[string]string // received "sb-" headers, kept apart from Headers
}

// As converts a received message to the broker's native message type (for
// example *amqp091.Delivery, *kafka.Message, *sqstypes.Message), as the Go
// CDK's As methods do. It returns false when target is not supported or
// the message was not received from a broker.
func (m *Message) As(target any) bool {
	if m.asFunc == nil {
		return false
	}
	return m.asFunc(target)
}

// Header returns the value of the named header, or "".
func (m *Message) Header(name string) string { return m.Headers[name] }

// SetHeader sets a header, allocating Headers when nil.
func (m *Message) SetHeader(name, value string) {
	if m.Headers == nil {
		m.Headers = make(map[string]string, 4)
	}
	m.Headers[name] = value
}

// ReservedHeaderPrefix begins the names of the headers this package uses
// for itself. Applications may not set headers with this prefix.
const ReservedHeaderPrefix = "sb-"

// Reserved headers.
const (
	hdrDeadline  = "sb-deadline"   // request deadline, Unix milliseconds
	hdrError     = "sb-error"      // responder error text on a reply
	hdrErrorCode = "sb-error-code" // responder error code on a reply
	hdrResponder = "sb-responder"  // group (Respond) or service (Serve) of a reply
	hdrDLQ       = "sb-dlq-"       // prefix of the failure envelope headers
	// delay headers: delay.go
)

// Limits on names and headers, the same on every transport.
const (
	// MaxNameLength is the longest topic, group, queue or service name.
	MaxNameLength = 128
	// MaxHeaderNameLength is the longest header name.
	MaxHeaderNameLength = 256
	// MaxHeadersSize is the most bytes of header names and values a
	// message may carry.
	MaxHeadersSize = 64 << 10
)

// validName checks a topic, group, queue or service name: 1 to
// MaxNameLength characters from [A-Za-z0-9._-], starting with a letter or
// digit.
func validName(what, name string) error {
	if name == "" {
		return invalid("%s name is empty", what)
	}
	if len(name) > MaxNameLength {
		return invalid("%s name is %d bytes long; the limit is %d", what, len(name), MaxNameLength)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return invalid("%s name %q: character %q at %d is not allowed (use A-Z a-z 0-9 . _ -, starting with a letter or digit)", what, name, c, i)
		}
	}
	return nil
}

// prepare validates m and converts it for the transport, filling in the ID
// and time. It never modifies m.
func (c *Client) prepare(m *Message, now time.Time) (*transport.Message, error) {
	tm := new(transport.Message)
	if err := c.prepareInto(tm, m, now); err != nil {
		return nil, err
	}
	if !tm.DeliverAt.IsZero() {
		return nil, invalid("message %s: DeliverAt is in the future: requests and replies cannot be delayed", tm.ID)
	}
	return tm, nil
}

// prepareInto is prepare writing into tm.
func (c *Client) prepareInto(tm *transport.Message, m *Message, now time.Time) error {
	if m == nil {
		return invalid("nil message")
	}
	size := 0
	for k, v := range m.Headers {
		if k == "" || len(k) > MaxHeaderNameLength || !utf8.ValidString(k) {
			return invalid("header name %q must be 1 to %d bytes of valid UTF-8", k, MaxHeaderNameLength)
		}
		if isReserved(k) {
			return invalid("header name %q uses the reserved prefix %q", k, ReservedHeaderPrefix)
		}
		if err := transport.CheckHeaderName(k); err != nil {
			return err
		}
		if !utf8.ValidString(v) {
			return invalid("header %q has a value that is not valid UTF-8", k)
		}
		size += len(k) + len(v)
	}
	if size > MaxHeadersSize {
		return errorf(ErrMessageTooLarge, "headers are %d bytes; the limit is %d", size, MaxHeadersSize)
	}
	due, err := checkDelay(m, now)
	if err != nil {
		return err
	}
	*tm = transport.Message{
		ID:            m.ID,
		Key:           m.Key,
		Body:          m.Body,
		Headers:       m.Headers,
		ContentType:   m.ContentType,
		Source:        m.Source,
		Type:          m.Type,
		Version:       m.Version,
		Time:          m.Time,
		CorrelationID: m.CorrelationID,
		ReplyTo:       m.ReplyTo,
	}
	if tm.Source == "" {
		tm.Source = c.o.source
	}
	if tm.ID == "" {
		tm.ID = newID()
	}
	if tm.Time.IsZero() {
		tm.Time = now
	}
	if !due.IsZero() {
		tm.DeliverAt = due
		tm.Headers = withHeader(tm.Headers, hdrDeliverAt, formatDue(due))
	}
	return c.checkSize(tm)
}

func (c *Client) checkSize(tm *transport.Message) error {
	if max := c.caps.MaxMessageSize; max > 0 {
		if n := tm.Size(); n > max {
			return errorf(ErrMessageTooLarge, "message %s is %d bytes; %s accepts at most %d", tm.ID, n, c.caps.Name, max)
		}
	}
	if max := c.caps.MaxHeaders; max > 0 && len(tm.Headers) > max {
		return errorf(ErrMessageTooLarge, "message %s has %d headers; %s accepts at most %d", tm.ID, len(tm.Headers), c.caps.Name, max)
	}
	return nil
}

// fromTransport converts a received message. Each call gets its own
// Headers, so that what one handler attempt changes is not seen by the
// next, by another group or in a dead letter; Body is shared, read-only.
func fromTransport(tm *transport.Message, topic string) *Message {
	headers, reserved := splitReserved(tm.Headers)
	if len(headers) > 0 && len(reserved) == 0 { // splitReserved made no copy
		headers = maps.Clone(headers)
	}
	return &Message{
		reserved:      reserved,
		ID:            tm.ID,
		Key:           tm.Key,
		Headers:       headers,
		Body:          tm.Body,
		ContentType:   tm.ContentType,
		Source:        tm.Source,
		Type:          tm.Type,
		Version:       tm.Version,
		Time:          tm.Time,
		CorrelationID: tm.CorrelationID,
		ReplyTo:       tm.ReplyTo,
		ReceivedFrom:  topic,
		DeliverAt:     parseDue(reserved[hdrDeliverAt]),
		asFunc:        tm.AsFunc,
	}
}

// withHeader returns a copy of h with name set to value.
func withHeader(h map[string]string, name, value string) map[string]string {
	out := make(map[string]string, len(h)+1)
	for k, v := range h {
		out[k] = v
	}
	out[name] = value
	return out
}

// splitReserved separates the reserved headers from the application's. It
// allocates only when reserved headers are present.
func splitReserved(h map[string]string) (user, reserved map[string]string) {
	n := 0
	for k := range h {
		if isReserved(k) {
			n++
		}
	}
	if n == 0 {
		return h, nil
	}
	reserved = make(map[string]string, n)
	if len(h) > n {
		user = make(map[string]string, len(h)-n)
	}
	for k, v := range h {
		if isReserved(k) {
			reserved[k] = v
		} else {
			user[k] = v
		}
	}
	return user, reserved
}

func isReserved(name string) bool {
	return len(name) >= len(ReservedHeaderPrefix) && strings.EqualFold(name[:len(ReservedHeaderPrefix)], ReservedHeaderPrefix)
}

// newID returns a random (version 4) UUID string. It draws from
// math/rand/v2's runtime source (ChaCha8, seeded from the system's
// entropy, per thread), which is unpredictable enough for message IDs and,
// unlike uuid.NewString, does not allocate beyond the string.
func newID() string {
	const hex = "0123456789abcdef"
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 0x4<<12 // version 4
	lo = lo&^(0x3<<62) | 0x2<<62 // variant 10
	var b [36]byte
	j := 0
	for i := 0; i < 16; i++ {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		var v byte
		if i < 8 {
			v = byte(hi >> (56 - 8*i))
		} else {
			v = byte(lo >> (56 - 8*(i-8)))
		}
		b[j], b[j+1] = hex[v>>4], hex[v&0xf]
		j += 2
	}
	return string(b[:])
}
