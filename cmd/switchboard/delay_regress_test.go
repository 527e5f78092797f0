package main

import (
	"strings"
	"testing"
	"time"
)

// TestDelayRegressDaysUnit (tester, D8): "remind the user a day later" is
// the first example; a user's first try is --delay 1d or --delay
// 7d. Days are accepted (a day is 24h); what is not read gives an error
// that says what is accepted, not only "parse error".
//
//	go test -count=1 -run 'TestDelayRegressDaysUnit' ./cmd/switchboard
func TestDelayRegressDaysUnit(t *testing.T) {
	for in, want := range map[string]time.Duration{"1d": 24 * time.Hour, "7d": 168 * time.Hour, "1d12h": 36 * time.Hour, "10m": 10 * time.Minute} {
		if got, err := parseDelay(in); err != nil || got != want {
			t.Errorf("parseDelay(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	w := newWorld(t)
	for _, d := range []string{"2 hours", "1x", "d", "8d"} {
		code, _, errOut := w.run("publish", "t", "x", "--delay", d)
		expectCode(t, "publish --delay "+d, code, exitUsage, errOut)
		if !strings.Contains(errOut, "24h") && !strings.Contains(errOut, "168h") {
			t.Errorf("--delay %s: the error does not say what is accepted:\n%s", d, errOut)
		}
	}
}
