package main

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// delayFlag is the value of --delay: a Go duration (10m, 1h30m, 24h) or a
// whole number of days, optionally followed by a Go duration (1d, 7d,
// 1d12h). A day is 24h.
type delayFlag time.Duration

// errDelaySyntax is what flag prints for a --delay it cannot read; it says
// what is accepted, since "1d" and "2 hours" are a user's first tries.
var errDelaySyntax = errors.New("not a duration: use a Go duration such as 10m, 90s or 24h, or days such as 1d or 7d (at most 168h, 7 days)")

func (d *delayFlag) String() string { return time.Duration(*d).String() }

func (d *delayFlag) Set(s string) error {
	v, err := parseDelay(s)
	if err != nil {
		return err
	}
	*d = delayFlag(v)
	return nil
}

// parseDelay reads a --delay value (see delayFlag).
func parseDelay(s string) (time.Duration, error) {
	if v, err := time.ParseDuration(s); err == nil {
		return v, nil
	}
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return 0, errDelaySyntax
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, errDelaySyntax
	}
	v := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 {
			return 0, errDelaySyntax
		}
		v += r
	}
	return v, nil
}
