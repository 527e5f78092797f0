package kafka

import (
	"strings"
	"testing"
)

// The delivery counts' metadata: offset order, only offsets at or after
// the position, within maxAttemptsMeta bytes (the oldest kept), and the
// single pair of earlier versions still read.
func TestAttemptsMetadata(t *testing.T) {
	counts := map[int64]*attemptCount{7: {n: 2}, 5: {n: 1}, 9: {n: 3}, 3: {n: 4}}
	meta := formatAttempts(counts, 5)
	if meta != "sb-attempts:5:1,7:2,9:3" {
		t.Fatalf("formatAttempts = %q", meta)
	}
	got := parseAttempts(meta)
	if len(got) != 3 || got[5] != 1 || got[7] != 2 || got[9] != 3 {
		t.Fatalf("parseAttempts = %v", got)
	}
	if got := parseAttempts("sb-attempts:42:3"); len(got) != 1 || got[42] != 3 {
		t.Fatalf("parseAttempts of a 0.1 pair = %v", got)
	}
	if got := parseAttempts("foreign metadata"); got != nil {
		t.Fatalf("parseAttempts of foreign metadata = %v", got)
	}
	if formatAttempts(counts, 10) != "" {
		t.Fatal("counts before the position are recorded")
	}

	big := map[int64]*attemptCount{}
	const base = int64(1_000_000_000_000_000_000)
	for i := int64(0); i < 1000; i++ {
		big[base+i] = &attemptCount{n: 1}
	}
	meta = formatAttempts(big, 0)
	if len(meta) > maxAttemptsMeta || len(meta) > 4096 {
		t.Fatalf("metadata of %d bytes, want at most %d", len(meta), maxAttemptsMeta)
	}
	got = parseAttempts(meta)
	if len(got) < 150 || got[base] != 1 {
		t.Fatalf("bounded metadata keeps %d counts (oldest kept: %v); want at least 150 from the oldest", len(got), got[base] == 1)
	}
	for o := range got {
		if o >= base+int64(len(got)) {
			t.Fatalf("offset %d kept while an older one was dropped", o)
		}
	}
	if strings.HasSuffix(meta, ",") {
		t.Fatalf("metadata ends with a separator: %q", meta[len(meta)-20:])
	}
}
