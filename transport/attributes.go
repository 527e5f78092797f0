package transport

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// The envelope attributes of a Message on the wire follow CloudEvents
// binary content mode: each attribute travels as a header named prefix +
// attribute, the body travels unchanged, and the content type travels as
// "content-type" where the broker has no native property for it. Adapters
// choose the prefix their protocol binding prescribes ("ce_" for Kafka,
// "cloudEvents:" for AMQP, "ce-" elsewhere).
const (
	AttrSpecVersion   = "specversion"   // always "1.0"
	AttrID            = "id"            // Message.ID
	AttrSource        = "source"        // the sending client, "switchboard" by default
	AttrType          = "type"          // Message.Type
	AttrTime          = "time"          // Message.Time, RFC 3339 with nanoseconds
	AttrDataVersion   = "dataversion"   // Message.Version (extension)
	AttrKey           = "partitionkey"  // Message.Key (CloudEvents partitioning extension)
	AttrCorrelationID = "correlationid" // Message.CorrelationID (extension)
	AttrReplyTo       = "replyto"       // Message.ReplyTo (extension)
	// HeaderContentType carries Message.ContentType where the broker has
	// no native content type.
	HeaderContentType = "content-type"
)

// DefaultSource is the CloudEvents source of messages Switchboard sends.
const DefaultSource = "switchboard"

// EncodeAttributes returns the wire headers for m: m.Headers followed by
// the envelope attributes under prefix. Empty fields are left out.
// Attributes for which skip returns true are left out too, for adapters
// that carry them in native properties; skip may be nil.
func EncodeAttributes(m *Message, prefix string, skip func(attr string) bool) map[string]string {
	h := make(map[string]string, len(m.Headers)+8)
	for k, v := range m.Headers {
		h[k] = v
	}
	EncodeAttributesFunc(m, prefix, skip, func(name, value string) { h[name] = value })
	return h
}

// attrNames holds one prefix's header names, built once.
type attrNames struct {
	specVersion, id, source, typ, time, version, key, corr, replyTo string
}

var attrNameCache sync.Map // prefix -> *attrNames

func namesFor(prefix string) *attrNames {
	if n, ok := attrNameCache.Load(prefix); ok {
		return n.(*attrNames)
	}
	n := &attrNames{
		specVersion: prefix + AttrSpecVersion, id: prefix + AttrID, source: prefix + AttrSource,
		typ: prefix + AttrType, time: prefix + AttrTime, version: prefix + AttrDataVersion,
		key: prefix + AttrKey, corr: prefix + AttrCorrelationID, replyTo: prefix + AttrReplyTo,
	}
	v, _ := attrNameCache.LoadOrStore(prefix, n)
	return v.(*attrNames)
}

// EncodeAttributesFunc calls put with the wire header name and value of
// each of m's envelope attributes under prefix (not m.Headers), as
// EncodeAttributes would include them. It lets an adapter fill its own
// header type without an intermediate map.
func EncodeAttributesFunc(m *Message, prefix string, skip func(attr string) bool, put func(name, value string)) {
	n := namesFor(prefix)
	emit := func(attr, name, v string) {
		if v == "" || (skip != nil && skip(attr)) {
			return
		}
		put(name, v)
	}
	emit(AttrSpecVersion, n.specVersion, "1.0")
	emit(AttrID, n.id, m.ID)
	emit(AttrSource, n.source, DefaultSource)
	emit(AttrType, n.typ, m.Type)
	if !m.Time.IsZero() && (skip == nil || !skip(AttrTime)) {
		put(n.time, m.Time.UTC().Format(time.RFC3339Nano))
	}
	emit(AttrDataVersion, n.version, m.Version)
	emit(AttrKey, n.key, m.Key)
	emit(AttrCorrelationID, n.corr, m.CorrelationID)
	emit(AttrReplyTo, n.replyTo, m.ReplyTo)
	if m.ContentType != "" && (skip == nil || !skip(HeaderContentType)) {
		put(HeaderContentType, m.ContentType)
	}
}

// DecodeAttributes fills m's envelope fields from wire headers written by
// EncodeAttributes (or by any CloudEvents binary-mode producer using the
// same prefix) and sets m.Headers to the remaining headers. Fields already
// set on m (from native properties) are kept when the header is absent.
// A malformed time is ignored rather than failing the message: the
// message is still delivered.
func DecodeAttributes(m *Message, prefix string, wire map[string]string) {
	var user map[string]string
	for k, v := range wire {
		if k == HeaderContentType {
			m.ContentType = v
			continue
		}
		attr, ok := strings.CutPrefix(k, prefix)
		if !ok || prefix == "" {
			if user == nil {
				user = make(map[string]string, len(wire))
			}
			user[k] = v
			continue
		}
		switch attr {
		case AttrSpecVersion, AttrSource:
		case AttrID:
			m.ID = v
		case AttrType:
			m.Type = v
		case AttrTime:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				m.Time = t
			}
		case AttrDataVersion:
			m.Version = v
		case AttrKey:
			m.Key = v
		case AttrCorrelationID:
			m.CorrelationID = v
		case AttrReplyTo:
			m.ReplyTo = v
		default:
			if user == nil {
				user = make(map[string]string, len(wire))
			}
			user[k] = v
		}
	}
	m.Headers = user
}

// ParseBool parses a boolean URL option value, accepting what strconv
// accepts plus "yes"/"no" and "on"/"off".
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes", "on":
		return true, nil
	case "no", "off":
		return false, nil
	}
	return strconv.ParseBool(v)
}
