package transport

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The header namespace policy. Application headers share the wire with
// the envelope: on Kafka both are record headers, on RabbitMQ both are
// AMQP application properties, on SQS both are message attributes. So
// that a header can never be mistaken for an envelope attribute, on any
// transport, the names the wire mappings use are reserved for every
// adapter alike (a message valid on one transport is valid on all):
//
//   - names beginning, in any case, with "ce_" (CloudEvents Kafka
//     binding), "ce-" (HTTP binding, used on SQS), "cloudEvents_" or
//     "cloudEvents:" (AMQP binding);
//   - "content-type", in any case;
//   - the names adapters use for themselves: "x-delivery-count" and
//     "x-death" (set by RabbitMQ), "switchboard:long-headers"
//     (rabbitmq), "sb-headers", "sb-headers64", "sb-body-encoding" (sqs).
//
// Package messaging rejects such headers on publish with an error matching
// ErrInvalid that names the header (CheckHeaderName). On receipt, a
// header with a reserved name that is not an envelope attribute of the
// adapter's binding (for example "cloudEvents:id" on Kafka, or "ce-type" on
// RabbitMQ) never sets an envelope field: it is delivered escaped, as
// EscapeHeader describes, so that the received message can be published
// again.
var (
	reservedPrefixes = []string{"ce_", "ce-", "cloudevents_", "cloudevents:"}
	reservedNames    = []string{
		HeaderContentType,
		"x-delivery-count", "x-death", // RabbitMQ
		"switchboard:long-headers",                       // rabbitmq adapter
		"sb-headers", "sb-headers64", "sb-body-encoding", // sqs adapter
	}
)

// ReservedHeaderName reports whether name belongs to the wire mapping's
// namespace (see the policy above) and so may not be an application
// header. The comparison ignores case.
func ReservedHeaderName(name string) bool {
	for _, p := range reservedPrefixes {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			return true
		}
	}
	for _, n := range reservedNames {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}

// CheckHeaderName returns an error matching ErrInvalid, naming the
// header, when name is reserved by the wire mapping (ReservedHeaderName).
// Package messaging calls it for every application header on publish.
func CheckHeaderName(name string) error {
	if ReservedHeaderName(name) {
		return fmt.Errorf("%w: header name %q is reserved for the wire mapping (CloudEvents attributes ce_*, ce-*, cloudEvents_*, cloudEvents:*, content-type, and adapter headers); use another name or the Message field", ErrInvalid, name)
	}
	return nil
}

// EscapeMarker begins the name of a received header that EscapeHeader
// escaped.
const EscapeMarker = "%"

// NeedsEscape reports whether a received header could not be published
// again as it is: its name is empty, not valid UTF-8 or reserved
// (ReservedHeaderName), or its value is not valid UTF-8.
func NeedsEscape(name, value string) bool {
	return name == "" || !utf8.ValidString(name) || !utf8.ValidString(value) || ReservedHeaderName(name)
}

// EscapeHeader makes a received header publishable, losslessly: when
// NeedsEscape(name, value), it returns EscapeMarker + pct(name) and
// pct(value), where pct replaces every byte that is '%', a control
// character (below 0x20, or 0x7F) or not ASCII (0x80 and above) by '%'
// and two upper-case hex digits; otherwise it returns name and value
// unchanged. For example a Kafka header "caf\xe9" = "\xff" is delivered as
// "%caf%E9" = "%FF", and a header "ce-type" on Kafka as "%ce-type".
// UnescapeHeader inverts it. A received header set goes through
// EscapeHeaders, which also escapes a foreign header whose name already
// begins with EscapeMarker when another header's escaped name would take
// it.
func EscapeHeader(name, value string) (string, string) {
	if !NeedsEscape(name, value) {
		return name, value
	}
	return EscapeMarker + pct(name), pct(value)
}

// EscapeHeaders returns the headers of a received message made
// publishable, losslessly: each header that NeedsEscape is escaped by
// EscapeHeader; a header whose name begins with EscapeMarker is delivered
// as it is, unless the escaped name of another header of the set is that
// same name: then it is escaped too (and so on, should its own escaped
// name be taken). So no two received headers share a name: "ce-type"=a
// and "%ce-type"=b on Kafka arrive as "%ce-type"=a and "%%25ce-type"=b,
// and UnescapeHeader gives back "ce-type" and "%ce-type". A set in which
// nothing needs escaping, such as the headers of a message Switchboard
// published, is returned as it is (the same map). A nil or empty h gives
// h.
func EscapeHeaders(h map[string]string) map[string]string {
	var escape map[string]bool // names (of h) to escape
	for k, v := range h {
		if NeedsEscape(k, v) {
			if escape == nil {
				escape = make(map[string]bool, 2)
			}
			escape[k] = true
		}
	}
	if len(escape) == 0 {
		return h
	}
	// Escaped names never collide with each other (pct is injective); a
	// name kept as it is collides only when it begins with the marker.
	for changed := true; changed; {
		changed = false
		for k := range escape {
			taken := EscapeMarker + pct(k)
			if _, ok := h[taken]; ok && !escape[taken] {
				escape[taken] = true
				changed = true
			}
		}
	}
	out := make(map[string]string, len(h))
	for k, v := range h {
		if escape[k] {
			out[EscapeMarker+pct(k)] = pct(v)
		} else {
			out[k] = v
		}
	}
	return out
}

// UnescapeHeader returns the header EscapeHeader escaped: for a name
// beginning with EscapeMarker, the percent-decoded name and value (ok is
// false when they are not well-formed); otherwise name and value as they
// are.
func UnescapeHeader(name, value string) (origName, origValue string, ok bool) {
	rest, escaped := strings.CutPrefix(name, EscapeMarker)
	if !escaped {
		return name, value, true
	}
	n, ok1 := unpct(rest)
	v, ok2 := unpct(value)
	if !ok1 || !ok2 {
		return name, value, false
	}
	return n, v, true
}

func pct(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' || c < 0x20 || c >= 0x7f {
			b.WriteByte('%')
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func unpct(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return string(b), true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
