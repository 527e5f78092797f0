package transport_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/transport"
)

func TestReservedHeaderNames(t *testing.T) {
	for _, n := range []string{"ce_id", "CE_TYPE", "ce-source", "Ce-X", "cloudEvents:id", "CLOUDEVENTS_TYPE", "cloudevents_", "content-type",
		"Content-Type", "x-delivery-count", "X-Death", "switchboard:long-headers", "sb-headers", "sb-headers64", "sb-body-encoding"} {
		err := transport.CheckHeaderName(n)
		if !errors.Is(err, transport.ErrInvalid) || !strings.Contains(err.Error(), `"`+n+`"`) {
			t.Errorf("CheckHeaderName(%q) = %v; want ErrInvalid naming the header", n, err)
		}
	}
	for _, n := range []string{"ce", "cex", "c-e_id", "content-type-x", "my-ce_id", "tenant", "traceparent", "sb-deadline", "%ce_id", "x-request-id"} {
		if err := transport.CheckHeaderName(n); err != nil {
			t.Errorf("CheckHeaderName(%q) = %v; want nil", n, err)
		}
	}
}

func TestEscapeHeader(t *testing.T) {
	cases := []struct{ name, value, wantName, wantValue string }{
		{"tenant", "acme", "tenant", "acme"},
		{"%literal", "50%", "%literal", "50%"}, // already escaped-looking: as it is
		{"ce_id", "x", "%ce_id", "x"},
		{"ce-type", "50%", "%ce-type", "50%25"},
		{"caf\xe9", "\xff\xfe", "%caf%E9", "%FF%FE"},
		{"ok", "v\xc3", "%ok", "v%C3"},
		{"", "v", "%", "v"},
		{"Content-Type", "a\x00b", "%Content-Type", "a%00b"},
	}
	for _, c := range cases {
		n, v := transport.EscapeHeader(c.name, c.value)
		if n != c.wantName || v != c.wantValue {
			t.Errorf("EscapeHeader(%q, %q) = %q, %q; want %q, %q", c.name, c.value, n, v, c.wantName, c.wantValue)
		}
		if transport.NeedsEscape(n, v) {
			t.Errorf("EscapeHeader(%q, %q) = %q, %q, which still needs escaping", c.name, c.value, n, v)
		}
		if n != c.name {
			on, ov, ok := transport.UnescapeHeader(n, v)
			if !ok || on != c.name || ov != c.value {
				t.Errorf("UnescapeHeader(%q, %q) = %q, %q, %v; want %q, %q", n, v, on, ov, ok, c.name, c.value)
			}
		}
	}
	if _, _, ok := transport.UnescapeHeader("%a%zz", "v"); ok {
		t.Error("UnescapeHeader accepted a malformed escape")
	}
}

func FuzzEscapeHeader(f *testing.F) {
	f.Add("ce_id", "v")
	f.Add("caf\xe9", "\xff")
	f.Add("", "%")
	f.Fuzz(func(t *testing.T, name, value string) {
		n, v := transport.EscapeHeader(name, value)
		if !utf8.ValidString(n) || !utf8.ValidString(v) || n == "" || transport.ReservedHeaderName(n) {
			t.Fatalf("EscapeHeader(%q, %q) = %q, %q: not publishable", name, value, n, v)
		}
		if n2, v2 := transport.EscapeHeader(n, v); n2 != n || v2 != v {
			t.Fatalf("escaping is not idempotent: %q, %q → %q, %q", n, v, n2, v2)
		}
		if !transport.NeedsEscape(name, value) {
			return
		}
		on, ov, ok := transport.UnescapeHeader(n, v)
		if !ok || on != name || ov != value {
			t.Fatalf("UnescapeHeader(%q, %q) = %q, %q, %v; want %q, %q", n, v, on, ov, ok, name, value)
		}
	})
}

// TestDecodeEnvelope covers the decoding rules of R80, R86 and R88.
func TestDecodeEnvelope(t *testing.T) {
	var m transport.Message
	transport.DecodeEnvelope(&m, map[string]string{
		"cloudEvents_id": "a", "CLOUDEVENTS:SOURCE": "urn:s", "cloudEvents_type": transport.DefaultType, "cloudEvents_specversion": "1.0",
		"cloudEvents_tenant": "acme", "plain": "p", "cloudEvents_plain": "ext-loses", "ce_id": "forged",
		"Content-Type": "text/other", "content-type": "text/plain",
	}, "cloudEvents_", "cloudEvents:")
	if m.ID != "a" || m.Source != "urn:s" || m.Type != "" || m.ContentType != "text/plain" {
		t.Errorf("envelope %+v", m)
	}
	want := map[string]string{"tenant": "acme", "plain": "p", "%ce_id": "forged", "%Content-Type": "text/other"}
	if len(m.Headers) != len(want) {
		t.Errorf("headers %q, want %q", m.Headers, want)
	}
	for k, v := range want {
		if m.Headers[k] != v {
			t.Errorf("header %q = %q, want %q (headers %q)", k, m.Headers[k], v, m.Headers)
		}
	}
	// A native content type wins; the header stays, escaped.
	m = transport.Message{ContentType: "application/json"}
	transport.DecodeEnvelope(&m, map[string]string{"content-type": "text/plain", "ce_datacontenttype": "x"}, "ce_")
	if m.ContentType != "application/json" || m.Headers["%content-type"] != "text/plain" {
		t.Errorf("native content type: %+v", m)
	}
	// Every written message is a valid CloudEvent: specversion, id, source, type.
	h := transport.EncodeAttributes(&transport.Message{ID: "x"}, "ce_", nil)
	if h["ce_specversion"] != "1.0" || h["ce_id"] != "x" || h["ce_source"] != transport.DefaultSource || h["ce_type"] != transport.DefaultType {
		t.Errorf("encoded %v", h)
	}
}
