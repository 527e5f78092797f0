package rabbitmq

import (
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/transport"
)

// AttrPrefix is the application-property name prefix of the CloudEvents
// attributes, as the CloudEvents AMQP protocol binding prefers it
// ("cloudEvents_"). Every attribute but datacontenttype travels as an
// application property (datacontenttype is the content-type property).
const AttrPrefix = "cloudEvents_"

// AttrPrefixColon is the binding's other prefix, "cloudEvents:", which
// consumers must accept too; Switchboard reads both and writes AttrPrefix.
const AttrPrefixColon = "cloudEvents:"

// DirectReplyTo is RabbitMQ's direct reply-to pseudo-queue.
const DirectReplyTo = "amq.rabbitmq.reply-to"

// deliveryCountHeader is the header quorum queues add on redeliveries.
const deliveryCountHeader = "x-delivery-count"

// longHeaders carries headers whose names are too long for an AMQP
// field name: an array of name, value, name, value… (long strings).
const longHeaders = "switchboard:long-headers"

// maxShortStr is the longest AMQP short string (property values, header
// names, queue/exchange names, routing keys).
const maxShortStr = 255

// encode builds the AMQP publishing for m, after the CloudEvents AMQP
// binding: every attribute but datacontenttype as a "cloudEvents_"
// application property, datacontenttype as the content-type property,
// except the replyto extension, which is the reply-to property. The
// id, type, correlation id and time are also set in the native
// AMQP properties (message-id, type, correlation-id, reply-to, timestamp)
// for AMQP consumers that do not speak CloudEvents, where they fit a short
// string.
func encode(m *transport.Message, persistent bool) (amqp.Publishing, error) {
	fits := func(s string) bool { return len(s) <= maxShortStr }
	ctNative := fits(m.ContentType)
	tbl := make(amqp.Table, len(m.Headers)+10)
	var long []any
	put := func(k, v string) {
		if len(k) > maxShortStr || k == longHeaders {
			// AMQP field names are short strings: carry the pair in an
			// array of long strings.
			long = append(long, k, v)
			return
		}
		if k == deliveryCountHeader {
			return // the broker's, never the application's
		}
		tbl[k] = v
	}
	for k, v := range m.Headers {
		put(k, v)
	}
	// ReplyTo travels in the reply-to property only (cloudEvents_replyto
	// when it is too long for it): for direct reply-to the broker rewrites
	// that property to the inbox channel's current address, which a copy
	// in the application properties would contradict.
	transport.EncodeAttributesFunc(m, AttrPrefix, func(attr string) bool {
		return attr == transport.HeaderContentType && ctNative || attr == transport.AttrReplyTo && fits(m.ReplyTo)
	}, put)
	if long != nil {
		tbl[longHeaders] = long
	}
	p := amqp.Publishing{Headers: tbl, Body: m.Body, DeliveryMode: amqp.Transient}
	if persistent {
		p.DeliveryMode = amqp.Persistent
	}
	if fits(m.ID) {
		p.MessageId = m.ID
	}
	if fits(m.Type) {
		p.Type = m.Type
	}
	if fits(m.CorrelationID) {
		p.CorrelationId = m.CorrelationID
	}
	if fits(m.ReplyTo) {
		p.ReplyTo = m.ReplyTo
	}
	if ctNative {
		p.ContentType = m.ContentType
	}
	if !m.Time.IsZero() {
		p.Timestamp = m.Time // seconds on the wire; the exact time travels as cloudEvents_time
	}
	return p, nil
}

// decode builds a Message from a delivery. quorum says whether the
// delivery count is reported (x-delivery-count). The native properties
// are read first, then the CloudEvents application properties under
// either prefix. A delivery with neither message-id nor cloudEvents_id
// (cloudEvents:id) has an empty ID: AMQP gives no stable identity to
// fall back on (see SEMANTICS.md, R84).
func decode(d *amqp.Delivery, quorum bool) *transport.Message {
	m := &transport.Message{
		ID:            d.MessageId,
		ContentType:   d.ContentType,
		Type:          d.Type,
		CorrelationID: d.CorrelationId,
		ReplyTo:       d.ReplyTo,
		Body:          d.Body,
	}
	if !d.Timestamp.IsZero() {
		m.Time = d.Timestamp.UTC()
	}
	redeliveries := -1
	wire := make(map[string]string, len(d.Headers))
	for k, v := range d.Headers {
		if k == deliveryCountHeader {
			if n, ok := toInt(v); ok {
				redeliveries = n
			}
			continue
		}
		if arr, ok := v.([]any); ok && k == longHeaders {
			for i := 0; i+1 < len(arr); i += 2 {
				wire[headerString(arr[i])] = headerString(arr[i+1])
			}
			continue
		}
		wire[k] = headerString(v)
	}
	// The CloudEvents attributes (either prefix) override the native
	// properties they duplicate.
	transport.DecodeEnvelope(m, wire, AttrPrefix, AttrPrefixColon)
	if d.ReplyTo != "" {
		m.ReplyTo = d.ReplyTo // the broker's (rewritten for direct reply-to)
	}
	if quorum {
		m.DeliveryCount = 1
		if redeliveries >= 0 {
			m.DeliveryCount = redeliveries + 1
		}
	}
	dd := *d
	m.AsFunc = func(target any) bool {
		switch t := target.(type) {
		case **amqp.Delivery:
			*t = &dd
			return true
		case *amqp.Delivery:
			*t = dd
			return true
		}
		return false
	}
	return m
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), true
	case uint64:
		return int(n), true
	case string:
		i, err := strconv.Atoi(n)
		return i, err == nil
	}
	return 0, false
}

// headerString renders a header value of any AMQP field type as a string
// (Switchboard headers are strings; other producers may send other types).
func headerString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case nil:
		return ""
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	if n, ok := toInt(v); ok {
		return strconv.Itoa(n)
	}
	return fmt.Sprint(v)
}
