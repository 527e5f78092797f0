package main

import (
	"strings"
	"testing"
)

// TestDelayBreakDaysUnit (tester): "remind the user a day later" is the
// issue's first example; a user's first try is --delay 1d or --delay 7d,
// which Go durations do not parse. The error must say what is accepted
// (a Go duration such as 24h, at most 168h), not only "parse error".
//
//	go test -count=1 -run 'TestDelayBreakDaysUnit' ./cmd/switchboard
func TestDelayBreakDaysUnit(t *testing.T) {
	w := newWorld(t)
	for _, d := range []string{"1d", "7d", "2 hours"} {
		code, _, errOut := w.run("publish", "t", "x", "--delay", d)
		expectCode(t, "publish --delay "+d, code, exitUsage, errOut)
		if !strings.Contains(errOut, "duration") && !strings.Contains(errOut, "24h") {
			t.Errorf("--delay %s: the error does not say what is accepted:\n%s", d, errOut)
		}
	}
}
