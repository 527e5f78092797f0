package rabbitmq

import (
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchboard-go/switchboard/transport"
)

// AttrPrefix is the header name prefix of the CloudEvents attributes that
// have no native AMQP 0-9-1 property (see the package documentation).
const AttrPrefix = "cloudEvents:"

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

// encode builds the AMQP publishing for m.
func encode(m *transport.Message, persistent bool) (amqp.Publishing, error) {
	fits := func(s string) bool { return len(s) <= maxShortStr }
	native := func(attr string) bool {
		switch attr {
		case transport.AttrID:
			return fits(m.ID)
		case transport.AttrType:
			return fits(m.Type)
		case transport.AttrCorrelationID:
			return fits(m.CorrelationID)
		case transport.AttrReplyTo:
			return fits(m.ReplyTo)
		case transport.HeaderContentType:
			return fits(m.ContentType)
		}
		return false
	}
	h := transport.EncodeAttributes(m, AttrPrefix, native)
	tbl := make(amqp.Table, len(h))
	var long []any
	for k, v := range h {
		if len(k) > maxShortStr || k == longHeaders {
			// AMQP field names are short strings: carry the pair in an
			// array of long strings.
			long = append(long, k, v)
			continue
		}
		if k == deliveryCountHeader {
			continue // the broker's, never the application's
		}
		tbl[k] = v
	}
	if long != nil {
		tbl[longHeaders] = long
	}
	p := amqp.Publishing{Headers: tbl, Body: m.Body, DeliveryMode: amqp.Transient}
	if persistent {
		p.DeliveryMode = amqp.Persistent
	}
	if native(transport.AttrID) {
		p.MessageId = m.ID
	}
	if native(transport.AttrType) {
		p.Type = m.Type
	}
	if native(transport.AttrCorrelationID) {
		p.CorrelationId = m.CorrelationID
	}
	if native(transport.AttrReplyTo) {
		p.ReplyTo = m.ReplyTo
	}
	if native(transport.HeaderContentType) {
		p.ContentType = m.ContentType
	}
	if !m.Time.IsZero() {
		p.Timestamp = m.Time // seconds on the wire; the exact time travels as a header
	}
	return p, nil
}

// decode builds a Message from a delivery. quorum says whether the
// delivery count is reported (x-delivery-count).
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
	transport.DecodeAttributes(m, AttrPrefix, wire)
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
