package sqs

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/transport"
)

// Wire attribute names (see the package documentation).
const (
	attrPrefix      = "ce-"          // CloudEvents attributes: ce-id, ce-type, ...
	attrHeaders     = "sb-headers"   // Message.Headers as one JSON object
	attrHeadersB64  = "sb-headers64" // the same, keys and values base64, when a header is not valid UTF-8
	attrBodyEnc     = "sb-body-encoding"
	attrSuffixB64   = "-b64" // an envelope attribute whose value is base64 (not service-safe text)
	bodyEncBase64   = "base64"
	bodyEncEmpty    = "empty"
	emptyBodyMarker = "-"
)

// Service limits, in bytes of the request as the service measures it:
// the body plus, for each message attribute, its name, data type and
// value.
const (
	sqsMaxWire  = 1 << 20   // SQS SendMessage, 1 MiB
	snsMaxWire  = 256 << 10 // SNS Publish, 256 KiB
	sqsMaxBatch = 1 << 20   // SendMessageBatch total
	snsMaxBatch = 256 << 10 // PublishBatch total
	maxBatch    = 10        // entries per batch call
	// snsPublishBatch is the number of entries per PublishBatch call: 9,
	// not 10. The query protocol sends entries as
	// PublishBatchRequestEntries.member.N form fields sorted by name
	// (member.1, member.10, member.2, ...), and fauxqs publishes them in
	// that order, so a batch of 10 would put the 10th message second.
	snsPublishBatch = 9
	wireHeadroom    = 8 << 10 // attribute names, types and JSON punctuation
	maxMessageSize  = (snsMaxWire - wireHeadroom) * 3 / 4
)

// textSafe reports whether s may travel as SQS/SNS text: valid UTF-8 made
// of the characters SQS allows (#x9 | #xA | #xD | #x20-#xD7FF |
// #xE000-#xFFFD | #x10000-#x10FFFF) minus those above U+FFFF, which the
// fauxqs emulator rejects.
func textSafe(s []byte) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		if (r >= 0xD800 && r <= 0xDFFF) || r > 0xFFFD {
			return false
		}
		i += n
	}
	return true
}

// wireAttr is one message attribute as sent: a String attribute.
type wireAttr struct{ name, value string }

// wireMsg is a message encoded for SQS/SNS.
type wireMsg struct {
	body  string
	attrs []wireAttr
	size  int // as the service counts it
}

// maxAttrs is the most message attributes SQS accepts on a message (and
// SNS delivers to SQS).
const maxAttrs = 10

// Trace context headers carried as top-level attributes, where the
// OpenTelemetry SQS propagators (otelaws) look for them.
const (
	hdrTraceparent = "traceparent"
	hdrTracestate  = "tracestate"
)

// encode encodes m for the wire, within SQS's 10 message attributes, as
// SEMANTICS.md's SQS table says. Top-level String attributes, in this
// order of priority: ce-specversion, ce-id, ce-source, ce-type (the
// CloudEvents required attributes, named like the HTTP binding's
// headers), content-type, traceparent and tracestate (from Headers),
// ce-correlationid, ce-replyto, ce-time, ce-partitionkey, ce-dataversion,
// sb-body-encoding (when the body is empty or binary). When
// they do not all fit, or when there are other headers, the last of them
// and the other headers travel in one JSON attribute, sb-headers
// (sb-headers64 when a name or value is not valid UTF-8), under the same
// names. An attribute value that is not service-safe text travels base64
// under its name + "-b64"; a trace header that is not is packed instead.
func encode(m *transport.Message) (wireMsg, error) {
	var w wireMsg
	var packed map[string]string
	pack := func(name, v string) {
		if packed == nil {
			packed = make(map[string]string, len(m.Headers)+4)
		}
		packed[name] = v
	}
	attr := func(name, v string) wireAttr {
		if textSafe([]byte(v)) {
			return wireAttr{name, v}
		}
		return wireAttr{name + attrSuffixB64, base64.StdEncoding.EncodeToString([]byte(v))}
	}
	// Candidates for the top level, in order of priority.
	cand := make([]wireAttr, 0, 14)
	var ext [5]string // correlationid, replyto, time, partitionkey, dataversion
	transport.EncodeAttributesFunc(m, attrPrefix, nil, func(name, v string) {
		switch name {
		case attrPrefix + transport.AttrCorrelationID:
			ext[0] = v
		case attrPrefix + transport.AttrReplyTo:
			ext[1] = v
		case attrPrefix + transport.AttrTime:
			ext[2] = v
		case attrPrefix + transport.AttrKey:
			ext[3] = v
		case attrPrefix + transport.AttrDataVersion:
			ext[4] = v
		default: // specversion, id, source, type, content-type
			cand = append(cand, wireAttr{name, v})
		}
	})
	trace := func(h string) {
		if v, ok := m.Headers[h]; ok {
			if v != "" && textSafe([]byte(v)) {
				cand = append(cand, wireAttr{h, v})
			} else {
				pack(h, v)
			}
		}
	}
	ext1 := func(i int, attr string) {
		if ext[i] != "" {
			cand = append(cand, wireAttr{attrPrefix + attr, ext[i]})
		}
	}
	trace(hdrTraceparent)
	trace(hdrTracestate)
	ext1(0, transport.AttrCorrelationID)
	ext1(1, transport.AttrReplyTo)
	ext1(2, transport.AttrTime)
	ext1(3, transport.AttrKey)
	ext1(4, transport.AttrDataVersion)
	for k, v := range m.Headers {
		if k != hdrTraceparent && k != hdrTracestate {
			pack(k, v)
		}
	}
	switch {
	case len(m.Body) == 0:
		w.body = emptyBodyMarker
		cand = append(cand, wireAttr{attrBodyEnc, bodyEncEmpty})
	case textSafe(m.Body):
		w.body = string(m.Body)
	default:
		w.body = base64.StdEncoding.EncodeToString(m.Body)
		cand = append(cand, wireAttr{attrBodyEnc, bodyEncBase64})
	}
	free := maxAttrs
	if len(packed) > 0 || len(cand) > free {
		free-- // the packed attribute's slot
	}
	for i, x := range cand {
		if i < free {
			w.attrs = append(w.attrs, attr(x.name, x.value))
		} else {
			pack(x.name, x.value)
		}
	}
	if len(packed) > 0 {
		name, v, err := encodeHeaders(packed)
		if err != nil {
			return w, err
		}
		w.attrs = append(w.attrs, wireAttr{name, v})
	}
	w.size = len(w.body)
	for _, a := range w.attrs {
		w.size += len(a.name) + len("String") + len(a.value)
	}
	return w, nil
}

// encodeHeaders returns the headers attribute: ASCII-only JSON (non-ASCII
// characters \u-escaped, so that no character the service rejects
// travels) when every name and value is valid UTF-8; otherwise a JSON
// object whose names and values are base64.
func encodeHeaders(h map[string]string) (name, value string, err error) {
	valid := true
	for k, v := range h {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			valid = false
			break
		}
	}
	if valid {
		name, value = attrHeaders, asciiJSONHeaders(h)
	}
	// Base64 names and values when a header is not valid UTF-8, or when
	// that is shorter (many non-ASCII or control characters, whose \u
	// escapes take up to 6 bytes each), so that headers never take more
	// than about 4/3 of their size on the wire.
	if !valid || len(value) > b64Bound(h) {
		b := make(map[string]string, len(h))
		for k, v := range h {
			b[base64.StdEncoding.EncodeToString([]byte(k))] = base64.StdEncoding.EncodeToString([]byte(v))
		}
		out, err := json.Marshal(b)
		return attrHeadersB64, string(out), err
	}
	return name, value, nil
}

// b64Bound is the length of the base64 form of h.
func b64Bound(h map[string]string) int {
	n := 2
	for k, v := range h {
		n += base64.StdEncoding.EncodedLen(len(k)) + base64.StdEncoding.EncodedLen(len(v)) + 6
	}
	return n
}

func asciiJSONHeaders(h map[string]string) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		asciiJSONString(&b, k)
		b.WriteByte(':')
		asciiJSONString(&b, h[k])
	}
	b.WriteByte('}')
	return b.String()
}

// asciiJSONString writes s (valid UTF-8) as a JSON string using only
// printable ASCII.
func asciiJSONString(b *bytes.Buffer, s string) {
	const hexd = "0123456789abcdef"
	u4 := func(r rune) {
		b.WriteString(`\u`)
		b.WriteByte(hexd[r>>12&15])
		b.WriteByte(hexd[r>>8&15])
		b.WriteByte(hexd[r>>4&15])
		b.WriteByte(hexd[r&15])
	}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r >= 0x20 && r < 0x7f:
			b.WriteByte(byte(r))
		case r > 0xFFFF:
			r1, r2 := utf16Surrogates(r)
			u4(r1)
			u4(r2)
		default:
			u4(r)
		}
	}
	b.WriteByte('"')
}

func utf16Surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xD800 + (r>>10)&0x3FF, 0xDC00 + r&0x3FF
}

// decode fills a Message from a received body and its String message
// attributes. The ce- attributes (any case) and content-type set the
// envelope, top-level or packed in sb-headers; attributes it does not know
// become headers, so that a message sent by any SQS/SNS producer is
// delivered with its attributes (see transport.DecodeEnvelope).
func decode(body string, attrs map[string]string) (*transport.Message, error) {
	m := &transport.Message{}
	if plainAttrs(attrs) {
		// The common case (ce- attributes only, a text body): attrs are
		// the wire headers as they are, no copy.
		transport.DecodeEnvelope(m, attrs, attrPrefix)
		m.Body = []byte(body)
		return m, nil
	}
	wire := make(map[string]string, len(attrs))
	var hdrs map[string]string
	enc := ""
	for name, v := range attrs {
		switch name {
		case attrBodyEnc:
			enc = v
			continue
		case attrHeaders:
			if err := json.Unmarshal([]byte(v), &hdrs); err != nil {
				return nil, fmt.Errorf("attribute %s: %w", attrHeaders, err)
			}
			continue
		case attrHeadersB64:
			var b map[string]string
			if err := json.Unmarshal([]byte(v), &b); err != nil {
				return nil, fmt.Errorf("attribute %s: %w", attrHeadersB64, err)
			}
			hdrs = make(map[string]string, len(b))
			for k, v := range b {
				kk, err1 := base64.StdEncoding.DecodeString(k)
				vv, err2 := base64.StdEncoding.DecodeString(v)
				if err1 != nil || err2 != nil {
					return nil, fmt.Errorf("attribute %s: bad base64", attrHeadersB64)
				}
				hdrs[string(kk)] = string(vv)
			}
			continue
		}
		if base, ok := cutSuffix(name, attrSuffixB64); ok && isEnvelope(base) {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", name, err)
			}
			wire[base] = string(raw)
			continue
		}
		wire[name] = v
	}
	for k, v := range hdrs {
		if k == attrBodyEnc {
			enc = v // packed when the top level was full
			continue
		}
		if _, top := wire[k]; !top {
			wire[k] = v
		}
	}
	transport.DecodeEnvelope(m, wire, attrPrefix)
	switch enc {
	case "":
		m.Body = []byte(body)
	case bodyEncEmpty:
		m.Body = []byte{}
	case bodyEncBase64:
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, fmt.Errorf("base64 body: %w", err)
		}
		m.Body = b
	default:
		return nil, fmt.Errorf("attribute %s: unknown encoding %q", attrBodyEnc, enc)
	}
	return m, nil
}

// plainAttrs reports whether attrs hold none of the adapter's own
// attributes (sb-headers, sb-headers64, sb-body-encoding, a -b64 form),
// so that decode can use them as the wire headers without a copy.
func plainAttrs(attrs map[string]string) bool {
	for name := range attrs {
		switch name {
		case attrBodyEnc, attrHeaders, attrHeadersB64:
			return false
		}
		if _, ok := cutSuffix(name, attrSuffixB64); ok {
			return false
		}
	}
	return true
}

// isEnvelope reports whether name is an envelope attribute that may
// travel base64 under name + "-b64".
func isEnvelope(name string) bool {
	if strings.EqualFold(name, transport.HeaderContentType) {
		return true
	}
	return len(name) > len(attrPrefix) && strings.EqualFold(name[:len(attrPrefix)], attrPrefix)
}

func cutSuffix(s, suf string) (string, bool) {
	if len(s) >= len(suf) && s[len(s)-len(suf):] == suf {
		return s[:len(s)-len(suf)], true
	}
	return s, false
}

// fifoID maps a key or message ID to a MessageGroupId /
// MessageDeduplicationId: at most 128 characters of printable ASCII. IDs
// that already qualify are kept; others become "h-" and a SHA-256 hex.
func fifoID(s string) string {
	ok := len(s) > 0 && len(s) <= 128
	for i := 0; ok && i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			ok = false
		}
	}
	if ok && !(len(s) > 2 && s[:2] == "h-") {
		return s
	}
	return "h-" + sha256Hex(s)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// sizeError returns the ErrMessageTooLarge error for message i.
func sizeError(i, size, limit int, what string) error {
	return fmt.Errorf("sqs: message %d: %s is %s bytes, more than %s: %w",
		i, what, strconv.Itoa(size), strconv.Itoa(limit), transport.ErrMessageTooLarge)
}
