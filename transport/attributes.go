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
// "cloudEvents_" for AMQP, "ce-" on SQS, after the HTTP binding). The
// mapping of each adapter is tabled in SEMANTICS.md ("Wire mappings").
//
// Every message an adapter writes is a valid CloudEvent: specversion, id,
// source and type are always present (source DefaultSource and type
// DefaultType when the message has none).
const (
	AttrSpecVersion   = "specversion"   // always "1.0"
	AttrID            = "id"            // Message.ID
	AttrSource        = "source"        // Message.Source, DefaultSource when empty
	AttrType          = "type"          // Message.Type, DefaultType when empty
	AttrTime          = "time"          // Message.Time, RFC 3339 with nanoseconds
	AttrDataVersion   = "dataversion"   // Message.Version (extension)
	AttrKey           = "partitionkey"  // Message.Key (CloudEvents partitioning extension)
	AttrCorrelationID = "correlationid" // Message.CorrelationID (extension)
	AttrReplyTo       = "replyto"       // Message.ReplyTo (extension)
	// AttrDataContentType is CloudEvents' name for Message.ContentType.
	// Bindings carry it as "content-type" (or a native property); it is
	// also read under the attribute prefix.
	AttrDataContentType = "datacontenttype"
	// HeaderContentType carries Message.ContentType where the broker has
	// no native content type. It is read in any case ("Content-Type").
	HeaderContentType = "content-type"
)

// DefaultSource is the CloudEvents source written for a message whose
// Source is empty. Package messaging fills Source from its client's
// WithSource option before a message reaches an adapter, so this is seen
// only on messages sent through a Transport directly.
const DefaultSource = "switchboard"

// DefaultType is the CloudEvents type written for a message whose Type is
// empty: CloudEvents requires a type, and every message Switchboard
// writes is a valid CloudEvent. On receipt, type DefaultType is read back
// as an empty Type, so that a message without a type round-trips
// unchanged.
const DefaultType = "switchboard.message"

// EncodeAttributes returns the wire headers for m: m.Headers followed by
// the envelope attributes under prefix. Empty optional fields are left
// out. Attributes for which skip returns true are left out too, for
// adapters that carry them in native properties; skip may be nil.
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
// EncodeAttributes would include them, in this order: specversion, id,
// source, type, time, dataversion, partitionkey, correlationid, replyto,
// content-type. It lets an adapter fill its own header type without an
// intermediate map.
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
	emit(AttrSource, n.source, SourceOf(m))
	emit(AttrType, n.typ, TypeOf(m))
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

// SourceOf returns the CloudEvents source written for m: m.Source, or
// DefaultSource when it is empty.
func SourceOf(m *Message) string {
	if m.Source == "" {
		return DefaultSource
	}
	return m.Source
}

// TypeOf returns the CloudEvents type written for m: m.Type, or
// DefaultType when it is empty.
func TypeOf(m *Message) string {
	if m.Type == "" {
		return DefaultType
	}
	return m.Type
}

// DecodeAttributes is DecodeEnvelope with one prefix.
func DecodeAttributes(m *Message, prefix string, wire map[string]string) {
	DecodeEnvelope(m, wire, prefix)
}

// DecodeEnvelope fills m's envelope fields from wire headers written by
// EncodeAttributes, or by any CloudEvents binary-mode producer using one
// of prefixes, and sets m.Headers to the remaining headers. Prefixes and
// "content-type" are matched in any case.
//
//   - prefix+id, source, type, time, dataversion, partitionkey,
//     correlationid, replyto set the Message fields (type DefaultType
//     sets an empty Type); prefix+specversion is dropped. Fields already
//     set on m (from native properties) are kept when the header is
//     absent.
//   - "content-type" in any case (or prefix+datacontenttype) sets
//     ContentType unless m.ContentType was already set from a native
//     property; the lower-case name wins over other casings. One that is
//     not used stays a header (escaped, as reserved).
//   - Any other prefix+name is a CloudEvents extension attribute: it
//     becomes the header name (lower case), unless a plain header of that
//     name is present, which wins.
//   - Every other header stays a header, passed through EscapeHeader: a
//     header that is reserved (ReservedHeaderName) or not valid UTF-8 is
//     delivered escaped, never as an envelope field.
//
// A malformed time is ignored rather than failing the message: the
// message is still delivered.
func DecodeEnvelope(m *Message, wire map[string]string, prefixes ...string) {
	var user, ext, cts map[string]string
	dataContentType, hasDCT := "", false
	for k, v := range wire {
		if strings.EqualFold(k, HeaderContentType) {
			if cts == nil {
				cts = make(map[string]string, 1)
			}
			cts[k] = v
			continue
		}
		attr, ok := cutPrefixFold(k, prefixes)
		if !ok {
			if user == nil {
				user = make(map[string]string, len(wire))
			}
			user[k] = v
			continue
		}
		switch attr {
		case AttrSpecVersion:
		case AttrID:
			m.ID = v
		case AttrSource:
			m.Source = v
		case AttrType:
			if v == DefaultType {
				v = ""
			}
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
		case AttrDataContentType:
			dataContentType, hasDCT = v, true
		default:
			if ext == nil {
				ext = make(map[string]string, 4)
			}
			ext[attr] = v
		}
	}
	// The content type: a native property wins, then "content-type",
	// then another casing (the least in byte order), then
	// prefix+datacontenttype. Content-type headers not used stay headers
	// (escaped: the name is reserved).
	if m.ContentType == "" && len(cts) > 0 {
		pick := HeaderContentType
		if _, ok := cts[pick]; !ok {
			pick = ""
			for k := range cts {
				if pick == "" || k < pick {
					pick = k
				}
			}
		}
		m.ContentType = cts[pick]
		delete(cts, pick)
	} else if m.ContentType == "" && hasDCT {
		m.ContentType = dataContentType
	}
	for k, v := range cts {
		if user == nil {
			user = make(map[string]string, len(cts))
		}
		user[k] = v
	}
	for k, v := range ext {
		if _, plain := user[k]; plain {
			continue
		}
		if user == nil {
			user = make(map[string]string, len(ext))
		}
		user[k] = v
	}
	m.Headers = EscapeHeaders(user)
}

// cutPrefixFold returns the lower-cased rest of name after the first of
// prefixes it begins with, in any case.
func cutPrefixFold(name string, prefixes []string) (string, bool) {
	for _, p := range prefixes {
		if p != "" && len(name) > len(p) && strings.EqualFold(name[:len(p)], p) {
			return strings.ToLower(name[len(p):]), true
		}
	}
	return "", false
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
