package main

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/switchboard-go/switchboard/messaging"
	"github.com/switchboard-go/switchboard/transport"
)

// version is the CLI's version; set it with
// -ldflags "-X main.version=v1.2.3". When empty, the module version from
// the build info is printed.
var version = ""

func printVersion(w io.Writer) {
	v, rev := version, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	fmt.Fprintf(w, "switchboard %s", v)
	if rev != "" {
		fmt.Fprintf(w, " (%s)", rev[:min(12, len(rev))])
	}
	fmt.Fprintf(w, " %s %s/%s\nschemes: %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.Join(transport.Schemes(), ", "))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// urlSecrets returns the secret parts of a URL: its password and the
// values of secret query parameters.
func urlSecrets(rawURL string) []string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil
	}
	var out []string
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	for k, vs := range u.Query() {
		if transport.IsSecretParam(k) {
			for _, v := range vs {
				out = append(out, v, url.QueryEscape(v))
			}
		}
	}
	return out
}

// headerFlag collects repeated --header name=value flags.
type headerFlag map[string]string

func (h headerFlag) String() string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k+"="+h[k])
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (h headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("header %q must be name=value", s)
	}
	h[name] = value
	return nil
}

// messageFlags are the flags that build a message to send.
type messageFlags struct {
	file        string
	headers     headerFlag
	id          string
	key         string
	typ         string
	version     string
	contentType string
}

func (m *messageFlags) register(fs *flag.FlagSet) {
	m.headers = headerFlag{}
	fs.StringVar(&m.file, "file", "", "read the body from `PATH` (- for stdin)")
	fs.Var(m.headers, "header", "add an application header `name=value` (repeatable)")
	fs.StringVar(&m.id, "id", "", "message `ID` (default: a new UUID per message)")
	fs.StringVar(&m.key, "key", "", "ordering `key`: messages with one key are handled in order")
	fs.StringVar(&m.typ, "type", "", "message `type`, e.g. order.created")
	fs.StringVar(&m.version, "version", "", "`version` of the type's schema")
	fs.StringVar(&m.contentType, "content-type", "", "MIME `type` of the body, e.g. application/json")
}

// build reads the body (from the argument, --file, or stdin) and returns
// the message. bodyArgs holds at most one positional body argument.
func (m *messageFlags) build(e *env, g *global, bodyArgs []string) (*messaging.Message, error) {
	var body []byte
	switch {
	case len(bodyArgs) > 1:
		return nil, usagef("too many arguments: %q (quote the body, or use --file)", bodyArgs)
	case len(bodyArgs) == 1 && m.file != "":
		return nil, usagef("give the body as an argument or with --file, not both")
	case len(bodyArgs) == 1:
		body = []byte(bodyArgs[0])
	case m.file != "" && m.file != "-":
		b, err := os.ReadFile(m.file)
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		body = b
	default:
		if e.stdin != nil {
			if e.terminal(e.stdin) {
				g.log.Info("reading the body from stdin; end it with Ctrl-D (or give BODY or --file)")
			}
			b, err := io.ReadAll(e.stdin)
			if err != nil {
				return nil, fmt.Errorf("read body from stdin: %w", err)
			}
			body = b
		}
	}
	msg := &messaging.Message{
		ID:          m.id,
		Key:         m.key,
		Body:        body,
		ContentType: m.contentType,
		Type:        m.typ,
		Version:     m.version,
	}
	if len(m.headers) > 0 {
		msg.Headers = make(map[string]string, len(m.headers))
		for k, v := range m.headers {
			msg.Headers[k] = v
		}
	}
	return msg, nil
}

// printer writes received messages, as text blocks or JSON lines, one at
// a time.
type printer struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

// jsonMessage is the JSON form of a message: one object per line.
type jsonMessage struct {
	ID          string     `json:"id"`
	Topic       string     `json:"topic,omitempty"`
	Key         string     `json:"key,omitempty"`
	Type        string     `json:"type,omitempty"`
	Version     string     `json:"version,omitempty"`
	ContentType string     `json:"content_type,omitempty"`
	Time        *time.Time `json:"time,omitempty"`
	// DeliverAt is the due time of a delayed message (publish --delay).
	DeliverAt     *time.Time `json:"deliver_at,omitempty"`
	CorrelationID string     `json:"correlation_id,omitempty"`
	ReplyTo       string     `json:"reply_to,omitempty"`
	// Responder is who sent a reply: the group of a respond, the service
	// of a serve (messaging.Message.Responder).
	Responder string            `json:"responder,omitempty"`
	Attempt   int               `json:"attempt,omitempty"`
	Headers   map[string]string `json:"headers,omitempty"`
	// Body is the body when it is valid UTF-8; otherwise BodyBase64 holds
	// it, base64-encoded.
	Body       *string     `json:"body,omitempty"`
	BodyBase64 string      `json:"body_base64,omitempty"`
	DeadLetter *jsonFailed `json:"dead_letter,omitempty"`
}

// jsonFailed is the failure envelope of a dead letter.
type jsonFailed struct {
	Topic        string    `json:"topic"`
	Group        string    `json:"group,omitempty"`
	Attempts     int       `json:"attempts"`
	LastError    string    `json:"last_error"`
	Permanent    bool      `json:"permanent,omitempty"`
	FirstFailure time.Time `json:"first_failure"`
	LastFailure  time.Time `json:"last_failure"`
}

func toJSON(m *messaging.Message, dl *messaging.DeadLetter) jsonMessage {
	j := jsonMessage{
		ID: m.ID, Topic: m.ReceivedFrom, Key: m.Key, Type: m.Type, Version: m.Version,
		ContentType: m.ContentType, CorrelationID: m.CorrelationID, ReplyTo: m.ReplyTo,
		Attempt: m.Attempt, Headers: m.Headers, Responder: m.Responder,
	}
	if !m.Time.IsZero() {
		t := m.Time
		j.Time = &t
	}
	if !m.DeliverAt.IsZero() {
		t := m.DeliverAt
		j.DeliverAt = &t
	}
	if utf8.Valid(m.Body) {
		s := string(m.Body)
		j.Body = &s
	} else {
		j.BodyBase64 = base64.StdEncoding.EncodeToString(m.Body)
	}
	if dl != nil {
		j.DeadLetter = &jsonFailed{
			Topic: dl.ReceivedFrom, Group: dl.Group, Attempts: dl.LastAttempt, LastError: dl.LastError,
			Permanent: dl.Permanent, FirstFailure: dl.FirstFailure, LastFailure: dl.LastFailure,
		}
	}
	return j
}

// print writes m (and its failure envelope, for a dead letter).
func (p *printer) print(m *messaging.Message, dl *messaging.DeadLetter) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		b, err := json.Marshal(toJSON(m, dl))
		if err != nil {
			return err
		}
		_, err = p.w.Write(append(b, '\n'))
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--- message %s\n", m.ID)
	field := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "%-14s %s\n", name+":", value) // correlation-id: needs the 15th column
		}
	}
	field("topic", m.ReceivedFrom)
	field("key", m.Key)
	if m.Attempt > 0 {
		field("attempt", fmt.Sprint(m.Attempt))
	}
	field("type", m.Type)
	field("version", m.Version)
	field("content-type", m.ContentType)
	if !m.Time.IsZero() {
		field("time", m.Time.Format(time.RFC3339Nano))
	}
	if !m.DeliverAt.IsZero() {
		field("deliver-at", m.DeliverAt.Format(time.RFC3339Nano))
	}
	field("correlation-id", m.CorrelationID)
	field("responder", m.Responder)
	keys := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%-15s%s: %s\n", "header:", k, m.Headers[k])
	}
	if dl != nil {
		field("dlq-topic", dl.ReceivedFrom)
		field("dlq-group", dl.Group)
		field("dlq-attempts", fmt.Sprint(dl.LastAttempt))
		field("dlq-error", dl.LastError)
		if dl.Permanent {
			field("dlq-permanent", "true")
		}
		field("dlq-first", dl.FirstFailure.Format(time.RFC3339Nano))
		field("dlq-last", dl.LastFailure.Format(time.RFC3339Nano))
	}
	if utf8.Valid(m.Body) {
		fmt.Fprintf(&b, "body (%d bytes):\n%s", len(m.Body), m.Body)
		if len(m.Body) > 0 && m.Body[len(m.Body)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		fmt.Fprintf(&b, "body (%d bytes, base64):\n%s\n", len(m.Body), base64.StdEncoding.EncodeToString(m.Body))
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

// holdRetry is the retry policy of commands that hold messages
// unacknowledged and release them (dlq list, the messages a --count
// consumer fetched beyond its count): a budget so large the released
// messages are never dead-lettered for it.
var holdRetry = messaging.RetryPolicy{
	MaxAttempts:    math.MaxInt32,
	InitialBackoff: 100 * time.Millisecond,
	MaxBackoff:     time.Second,
	Multiplier:     2,
	Jitter:         0,
}

// errReleased is returned by handlers for messages they release unhandled.
var errReleased = fmt.Errorf("switchboard CLI: message released unhandled")
