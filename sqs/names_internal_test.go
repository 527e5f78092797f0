package sqs

import (
	"bytes"
	"maps"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-go/switchboard/transport"
)

func TestNamesValidAndDistinct(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
	validFIFO := regexp.MustCompile(`^[A-Za-z0-9_-]{1,75}\.fifo$`)
	long := strings.Repeat("a", 120)
	names := []string{"a", "a.b", "a_b", "a-b", "a_db", "a.dlq", "a_ddlq", "A", "orders.created.rpc", "é", "_d", "_u", "x_S", "x_R", "x_Z",
		long, long + "b", long + ".b", long[:79], long[:80], long[:81], long[:63] + "_Z1234567890abcdef"}
	seen := map[string]string{}
	add := func(kind, name, mapped string, fifo bool) {
		if fifo && !validFIFO.MatchString(mapped) || !fifo && !valid.MatchString(mapped) {
			t.Fatalf("%s %q -> %q: not a valid name", kind, name, mapped)
		}
		key := kind + "|" + name
		if prev, ok := seen[mapped]; ok && prev != key {
			t.Fatalf("%q and %q both map to %q", prev, key, mapped)
		}
		seen[mapped] = key
	}
	for _, fifo := range []bool{false, true} {
		clear(seen)
		for _, n := range names {
			add("queue", n, QueueName(n, fifo), fifo)
			for _, g := range []string{"g", "g.x", long} {
				add("group", n+"/"+g, GroupQueueName(n, g, fifo), fifo)
			}
		}
		for _, n := range names {
			add("inbox", n, inboxQueueName(n, "0123abcd"), false)
		}
	}
	if QueueName("orders.dlq", false) != "orders_ddlq" || QueueName("orders", true) != "orders.fifo" {
		t.Fatalf("mapping changed: %s %s", QueueName("orders.dlq", false), QueueName("orders", true))
	}
	if p := QueueName("sbt-1a2b-", false); !strings.HasPrefix(GroupQueueName("sbt-1a2b-"+long, "g", true), p) {
		t.Fatal("a prefix must map to a prefix")
	}
}

func TestCodecRoundTrip(t *testing.T) {
	cases := []*transport.Message{
		{ID: "1"},
		{ID: "2", Body: []byte{}},
		{ID: "3", Body: []byte{0, 1, 0xff}, Headers: map[string]string{"a": "\xff", "\xfe": "b"}},
		{ID: "4 😀", Type: "t\x01", Key: "k", Body: []byte("text 😀"), Headers: map[string]string{"é": strings.Repeat("é", 100), "ctl": "\x00\x1f"}},
		{ID: "6", Source: "urn:s", Type: "t", Key: "k", Version: "2", CorrelationID: "c", ReplyTo: "r", ContentType: "application/octet-stream",
			Time: time.Unix(1, 2), Body: []byte{0, 0xff}, Headers: map[string]string{"traceparent": "00-a-b-01", "tracestate": "x=1", "h": "v"}},
		{ID: "7", Source: "urn:s", Type: "t", Key: "k", Version: "2", CorrelationID: "c", ReplyTo: "r", ContentType: "text/plain",
			Time: time.Unix(1, 2), Body: []byte{}, Headers: map[string]string{"traceparent": "00-a-b-01", "tracestate": "x=1"}},
		{ID: "5", Body: []byte("plain text\r\n\t"), Headers: map[string]string{"x": `"quoted" \ back`}, ContentType: "text/plain", ReplyTo: "http://q/1", CorrelationID: "c", Version: "3"},
	}
	for _, m := range cases {
		w, err := encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(w.attrs) > 10 {
			t.Fatalf("%s: %d attributes", m.ID, len(w.attrs))
		}
		attrs := map[string]string{}
		for _, a := range w.attrs {
			if !textSafe([]byte(a.value)) {
				t.Fatalf("%s: attribute %s not text-safe: %q", m.ID, a.name, a.value)
			}
			attrs[a.name] = a.value
		}
		if !textSafe([]byte(w.body)) || w.body == "" {
			t.Fatalf("%s: body not sendable: %q", m.ID, w.body)
		}
		got, err := decode(w.body, attrs)
		if err != nil {
			t.Fatal(err)
		}
		// Headers that are not valid UTF-8 arrive escaped (transport.EscapeHeader).
		var want map[string]string
		for k, v := range m.Headers {
			if want == nil {
				want = map[string]string{}
			}
			k, v = transport.EscapeHeader(k, v)
			want[k] = v
		}
		if got.ID != m.ID || got.Type != m.Type || got.Key != m.Key || !bytes.Equal(got.Body, m.Body) ||
			!maps.Equal(got.Headers, want) || got.ContentType != m.ContentType || got.ReplyTo != m.ReplyTo ||
			got.CorrelationID != m.CorrelationID || got.Version != m.Version || (m.Source != "" && got.Source != m.Source) ||
			!got.Time.Equal(m.Time) {
			t.Fatalf("round trip:\nwant %+v\n got %+v", m, got)
		}
		if w.size > 4*m.Size()/3+wireHeadroom {
			t.Fatalf("%s: wire size %d for message size %d", m.ID, w.size, m.Size())
		}
	}
}
