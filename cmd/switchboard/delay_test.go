package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestPublishDelay checks publish --delay: the command exits once the
// broker holds the message, and the subscriber gets it no earlier than
// the delay, with its due time (R114, R118: the producer is gone when the
// message is due).
func TestPublishDelay(t *testing.T) { eachTransport(t, testPublishDelay) }

func testPublishDelay(t *testing.T, w *world) {
	sub := w.start(nil, "subscribe", "--group", "g", w.n("later"), "--count", "1", "--json")
	sub.waitReady(t)
	const delay = 2 * time.Second
	before := time.Now()
	code, out, errOut := w.run("publish", w.n("later"), "hello", "--delay", delay.String())
	expectCode(t, "publish --delay", code, exitOK, errOut)
	id := strings.TrimSpace(out)
	expectCode(t, "subscribe", sub.wait(t), exitOK, sub.stderr.String())
	if got := time.Since(before); got < delay {
		t.Errorf("delayed message handed over after %v, before its delay of %v", got, delay)
	}
	var got jsonMessage
	if err := json.Unmarshal([]byte(sub.stdout.String()), &got); err != nil {
		t.Fatalf("subscribe output is not one JSON line: %v\n%s", err, sub.stdout.String())
	}
	if got.ID != id || got.DeliverAt == nil || got.DeliverAt.Before(before.Add(delay)) {
		t.Errorf("message = %+v (deliver_at %v); published ID %s at %v with --delay %v", got, got.DeliverAt, id, before, delay)
	}
}

func TestPublishDelayOutOfRange(t *testing.T) {
	w := newWorld(t)
	for _, d := range []string{"-1s", "169h"} {
		code, _, errOut := w.run("publish", "t", "x", "--delay", d)
		expectCode(t, "publish --delay "+d, code, exitUsage, errOut)
		if !strings.Contains(errOut, "168h0m0s") {
			t.Errorf("--delay %s: error does not name the maximum:\n%s", d, errOut)
		}
	}
}
