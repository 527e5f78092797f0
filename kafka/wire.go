package kafka

import (
	"strconv"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/switchboard-go/switchboard/transport"
)

// ceprefix is the CloudEvents Kafka protocol binding's header prefix.
const ceprefix = "ce_"

// encode maps a Message to a Kafka record (see the package documentation).
func encode(topic string, m *transport.Message, hint int) kafkago.Message {
	h := transport.EncodeAttributes(m, ceprefix, func(attr string) bool { return attr == transport.AttrKey })
	km := kafkago.Message{Topic: topic, Value: m.Body, Partition: hint, Time: m.Time}
	if m.Key != "" {
		km.Key = []byte(m.Key)
	}
	if km.Value == nil {
		km.Value = []byte{}
	}
	km.Headers = make([]kafkago.Header, 0, len(h))
	for k, v := range h {
		km.Headers = append(km.Headers, kafkago.Header{Key: k, Value: []byte(v)})
	}
	return km
}

// decode maps a Kafka record to a Message (see the package documentation
// and SEMANTICS.md, "Wire mappings"): the CloudEvents Kafka binding's ce_
// headers and content-type (any case) set the envelope; the record key is
// the Key; a message without ce_time gets the record's timestamp, and one
// without ce_id the ID "<topic>-<partition>-<offset>", stable across
// redeliveries.
func decode(km *kafkago.Message) *transport.Message {
	m := &transport.Message{}
	if len(km.Key) > 0 {
		m.Key = string(km.Key)
	}
	wire := make(map[string]string, len(km.Headers))
	for _, h := range km.Headers {
		wire[h.Key] = string(h.Value)
	}
	transport.DecodeEnvelope(m, wire, ceprefix)
	if len(km.Value) > 0 {
		m.Body = km.Value
	} else {
		m.Body = []byte{}
	}
	if m.Time.IsZero() {
		m.Time = km.Time // no ce_time (or a malformed one): the record's timestamp
	}
	if m.ID == "" {
		m.ID = km.Topic + "-" + strconv.Itoa(km.Partition) + "-" + strconv.FormatInt(km.Offset, 10)
	}
	native := *km
	m.AsFunc = func(target any) bool {
		if p, ok := target.(*kafkago.Message); ok {
			*p = native
			return true
		}
		return false
	}
	return m
}
