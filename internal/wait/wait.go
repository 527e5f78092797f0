// Package wait holds the pauses of the adapters' and messaging's retry
// and receive loops: a sleep that ends early when its loop is stopped, and
// the jittered exponential backoff between attempts.
package wait

import (
	"context"
	"math/rand/v2"
	"time"
)

// Sleep waits d, or until ctx ends or done is closed (a nil done never
// is), whichever comes first. It reports whether the whole d passed: false
// means the loop should stop.
func Sleep(ctx context.Context, done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-done:
	}
	return false
}

// Backoff returns the pause before attempt n+1 after n failed attempts
// (n from 0): base doubled n times, at most limit, then jittered to a
// uniformly random duration between half of it and all of it, so that
// clients retrying together spread out. A limit below base gives limit.
func Backoff(n int, base, limit time.Duration) time.Duration {
	d := base << min(max(n, 0), 30)
	if d > limit || d <= 0 {
		d = limit
	}
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
