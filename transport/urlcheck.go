package transport

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
)

// Query parses the query of an adapter's URL strictly: a pair that
// url.Query would silently drop (a bad %-escape, a ';' separator) is an
// error instead of being ignored; the adapter wraps it with ErrInvalid.
// The error never repeats the parameter's value (it may be a secret).
func Query(u *url.URL) (url.Values, error) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("malformed URL query (%v): separate parameters with '&' and %%-encode reserved characters", err)
	}
	return q, nil
}

// CheckPort returns an error unless the port of hostport ("host:port"; a
// missing port is accepted) is a number from 1 to 65535; the adapter wraps
// it with ErrInvalid.
func CheckPort(hostport string) error {
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil // no port: the adapter's default applies
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q of %q: want a number from 1 to 65535", port, hostport)
	}
	return nil
}
