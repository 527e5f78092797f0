package transport_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	_ "github.com/switchboard-go/switchboard/inmem"
	"github.com/switchboard-go/switchboard/transport"
)

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ url, want string }{
		{"", "no scheme"},
		{"nope://host", `unknown URL scheme "nope"`},
		{"://bad", "cannot parse"},
		{"mem://?bogus=1", `unknown option "bogus"`},
		{"mem://?max_message_size=-1", "must be a positive integer"},
		{"mem://somehost", "takes no host"},
	} {
		_, err := transport.Open(ctx, tc.url)
		if !errors.Is(err, transport.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %v; want ErrInvalid containing %q", tc.url, err, tc.want)
		}
	}
	tr, err := transport.Open(ctx, "MEM://?max_message_size=10")
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if got := tr.Capabilities().MaxMessageSize; got != 10 {
		t.Fatalf("MaxMessageSize = %d", got)
	}
}

func TestOpenErrorHidesPassword(t *testing.T) {
	_, err := transport.Open(context.Background(), "nope://user:hunter2@host/")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v leaks the password", err)
	}
	_, err = transport.Open(context.Background(), "mem://user:hunter2@host/?secret_key=abc")
	if err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "abc") {
		t.Fatalf("error %v leaks a secret", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://guest:guest@localhost:5672/vh":       "amqp://guest:xxxxx@localhost:5672/vh",
		"kafka://h:9092?sasl_password=p&client_id=c": "kafka://h:9092?sasl_password=xxxxx&client_id=c",
		"sqs://?region=eu-west-1":                    "sqs://?region=eu-west-1",
		"amqp://u:p@h:bad port/":                     "amqp://u:xxxxx@h:bad port/",
	} {
		if got := transport.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestRegisterPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"empty": func() {
			transport.Register("", func(context.Context, *url.URL) (transport.Transport, error) { return nil, nil })
		},
		"nil": func() { transport.Register("x-nil", nil) },
		"duplicate": func() {
			transport.Register("mem", func(context.Context, *url.URL) (transport.Transport, error) { return nil, nil })
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Register did not panic", name)
				}
			}()
			f()
		}()
	}
}

func TestAttributesRoundTrip(t *testing.T) {
	m := &transport.Message{
		ID: "id-1", Key: "k", Body: []byte{0, 1}, Headers: map[string]string{"x": "1", "sb-deadline": "5"},
		ContentType: "application/json", Type: "order.created", Version: "2",
		Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), CorrelationID: "c", ReplyTo: "r",
	}
	for _, prefix := range []string{"ce_", "ce-", "cloudEvents:"} {
		wire := transport.EncodeAttributes(m, prefix, nil)
		if wire[prefix+"specversion"] != "1.0" || wire["content-type"] != "application/json" {
			t.Fatalf("%s: wire %v", prefix, wire)
		}
		var got transport.Message
		transport.DecodeAttributes(&got, prefix, wire)
		if got.ID != m.ID || got.Key != m.Key || got.ContentType != m.ContentType || got.Type != m.Type ||
			got.Version != m.Version || !got.Time.Equal(m.Time) || got.CorrelationID != m.CorrelationID ||
			got.ReplyTo != m.ReplyTo || len(got.Headers) != 2 || got.Headers["x"] != "1" || got.Headers["sb-deadline"] != "5" {
			t.Fatalf("%s: round trip %+v", prefix, got)
		}
	}
	wire := transport.EncodeAttributes(m, "ce_", func(a string) bool { return a == transport.AttrID || a == transport.HeaderContentType })
	if _, ok := wire["ce_id"]; ok {
		t.Fatal("skip did not skip id")
	}
	if _, ok := wire["content-type"]; ok {
		t.Fatal("skip did not skip content-type")
	}
}

func FuzzDecodeAttributes(f *testing.F) {
	f.Add("ce_", "ce_id", "1", "ce_time", "2026-01-02T03:04:05Z", "x", "y")
	f.Add("ce-", "ce-time", "not a time", "content-type", "text/plain", "", "")
	f.Add("", "ce_id", "\xff", "ce_", "", "a", "b")
	f.Fuzz(func(t *testing.T, prefix, k1, v1, k2, v2, k3, v3 string) {
		wire := map[string]string{k1: v1, k2: v2, k3: v3}
		var m transport.Message
		transport.DecodeAttributes(&m, prefix, wire)
		// Whatever came in, encoding and decoding again must be stable.
		again := transport.EncodeAttributes(&m, prefix, nil)
		var m2 transport.Message
		transport.DecodeAttributes(&m2, prefix, again)
		if m2.ID != m.ID || m2.Type != m.Type || m2.Key != m.Key || m2.ContentType != m.ContentType ||
			m2.CorrelationID != m.CorrelationID || m2.ReplyTo != m.ReplyTo || m2.Version != m.Version {
			t.Fatalf("unstable: %+v then %+v", m, m2)
		}
		if prefix != "" && len(m2.Headers) != len(m.Headers) {
			t.Fatalf("headers changed: %v then %v", m.Headers, m2.Headers)
		}
	})
}

func FuzzOpenURL(f *testing.F) {
	for _, s := range []string{"mem://", "mem://?max_message_size=5", "amqp://u:p@h/", "kafka://a:1,b:2?x=y",
		"sqs://?region=r&endpoint=http://localhost:1", "mem://%zz", "mem://?max_queue_length=0", "::", "mem:opaque"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tr, err := transport.Open(context.Background(), raw)
		if err == nil {
			tr.Close()
			return
		}
		if !utf8.ValidString(err.Error()) && utf8.ValidString(raw) {
			t.Fatalf("error is not valid UTF-8: %q", err)
		}
		if u, perr := url.Parse(raw); perr == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && len(p) >= 4 && !strings.Contains(transport.Redact(raw), p) && strings.Contains(err.Error(), p) {
				t.Fatalf("error %q leaks password %q", err, p)
			}
		}
		_ = transport.Redact(raw)
	})
}
