package transport

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Opener opens a Transport from a URL whose scheme it was registered for.
// It must reject query parameters it does not know with an error matching
// ErrInvalid that names the accepted ones, and must never put a password
// or secret in an error.
type Opener func(ctx context.Context, u *url.URL) (Transport, error)

var registry struct {
	mu      sync.RWMutex
	openers map[string]Opener
}

// Register makes an adapter available under a URL scheme, such as "kafka".
// Adapters call it from an init function, as database/sql drivers do. It
// panics if the scheme is empty or already registered, or opener is nil.
func Register(scheme string, opener Opener) {
	scheme = strings.ToLower(scheme)
	if scheme == "" || opener == nil {
		panic("transport: Register with empty scheme or nil opener")
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if registry.openers == nil {
		registry.openers = make(map[string]Opener)
	}
	if _, dup := registry.openers[scheme]; dup {
		panic("transport: Register called twice for scheme " + scheme)
	}
	registry.openers[scheme] = opener
}

// Schemes returns the registered schemes, sorted.
func Schemes() []string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	out := make([]string, 0, len(registry.openers))
	for s := range registry.openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open parses rawURL and opens it with the Opener registered for its
// scheme. Errors never include the URL's password.
func Open(ctx context.Context, rawURL string) (Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error would echo the raw URL, password included.
		return nil, fmt.Errorf("%w: cannot parse URL %q", ErrInvalid, Redact(rawURL))
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("%w: URL %q has no scheme; registered schemes: %s",
			ErrInvalid, Redact(rawURL), strings.Join(Schemes(), ", "))
	}
	registry.mu.RLock()
	op := registry.openers[strings.ToLower(u.Scheme)]
	registry.mu.RUnlock()
	if op == nil {
		return nil, fmt.Errorf("%w: unknown URL scheme %q; registered schemes: %s (import the adapter package to register its scheme)",
			ErrInvalid, u.Scheme, strings.Join(Schemes(), ", "))
	}
	t, err := op(ctx, u)
	if err != nil {
		// An opener returning (*T)(nil) would make a non-nil interface.
		return nil, err
	}
	return t, nil
}

// Redact returns rawURL with any password, and the values of query
// parameters that commonly hold secrets (IsSecretParam), replaced by
// "xxxxx"; the user name and everything else are kept as written. It
// redacts the same way whether or not rawURL parses, and also the values
// of malformed query parameters (bad percent-encoding, ';' separators)
// that url.Query would drop. Use it whenever a URL may be printed.
func Redact(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return RedactURL(u)
	}
	// Unparsable: work on the text. "scheme://userinfo@host/path?query#f"
	out, rest := "", rawURL
	if i := strings.Index(rest, "://"); i >= 0 {
		out, rest = rest[:i+3], rest[i+3:]
	}
	beforeQuery, query, hasQuery := strings.Cut(rest, "?")
	// The userinfo ends at the last '@' before the query.
	if j := strings.LastIndex(beforeQuery, "@"); j >= 0 {
		if user, _, hasPass := strings.Cut(beforeQuery[:j], ":"); hasPass {
			beforeQuery = user + ":xxxxx" + beforeQuery[j:]
		}
	}
	out += beforeQuery
	if hasQuery {
		q, frag, hasFrag := strings.Cut(query, "#")
		out += "?" + redactQuery(q)
		if hasFrag {
			out += "#" + frag
		}
	}
	return out
}

// RedactURL is Redact for a parsed URL. It does not modify u.
func RedactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, has := c.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), "xxxxx")
		}
	}
	c.RawQuery = redactQuery(c.RawQuery)
	out := c.String()
	// url.URL.String drops the "//" of an empty authority ("sqs://?…").
	if c.Opaque == "" && c.Scheme != "" && !strings.HasPrefix(out, c.Scheme+"://") {
		out = c.Scheme + "://" + strings.TrimPrefix(out, c.Scheme+":")
	}
	return out
}

// redactQuery replaces the values of secret parameters in a raw query,
// pair by pair as written ('&' or ';' separated), without decoding the
// values: a malformed value is redacted too, and the other pairs are kept
// byte for byte.
func redactQuery(raw string) string {
	if raw == "" {
		return raw
	}
	var b strings.Builder
	for raw != "" {
		n := strings.IndexAny(raw, "&;")
		pair, sep := raw, ""
		if n >= 0 {
			pair, sep, raw = raw[:n], raw[n:n+1], raw[n+1:]
		} else {
			raw = ""
		}
		k, _, hasValue := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && IsSecretParam(name) {
			pair = k + "=xxxxx"
		}
		b.WriteString(pair)
		b.WriteString(sep)
	}
	return b.String()
}

// IsSecretParam reports whether a URL query parameter name is one whose
// value must never be printed (passwords, secrets, tokens, keys).
func IsSecretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"password", "secret", "token", "key", "credential", "sasl_pass"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
