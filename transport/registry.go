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
	return op(ctx, u)
}

// Redact returns rawURL with any password, and the values of query
// parameters that commonly hold secrets, replaced by "xxxxx". Use it
// whenever a URL may be printed.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Cut anything between "://" and the last "@" before the path.
		if i := strings.Index(rawURL, "://"); i >= 0 {
			rest := rawURL[i+3:]
			if j := strings.LastIndex(rest, "@"); j >= 0 {
				return rawURL[:i+3] + "xxxxx@" + rest[j+1:]
			}
		}
		return rawURL
	}
	return RedactURL(u)
}

// RedactURL is Redact for a parsed URL. It does not modify u.
func RedactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		if _, has := c.User.Password(); has {
			c.User = url.UserPassword(c.User.Username(), "xxxxx")
		}
	}
	if c.RawQuery != "" {
		q := c.Query()
		changed := false
		for k := range q {
			if IsSecretParam(k) {
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if changed {
			c.RawQuery = q.Encode()
		}
	}
	out := c.String()
	// url.URL.String drops the "//" of an empty authority ("sqs://?…").
	if c.Opaque == "" && c.Scheme != "" && !strings.HasPrefix(out, c.Scheme+"://") {
		out = c.Scheme + "://" + strings.TrimPrefix(out, c.Scheme+":")
	}
	return out
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
