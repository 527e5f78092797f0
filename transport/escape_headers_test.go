package transport_test

import (
	"maps"
	"testing"

	"github.com/switchboard-go/switchboard/transport"
)

// R85: a received header set is escaped losslessly: a foreign name that
// begins with '%' is escaped too when another header's escaped name
// would take it, so no value is lost and UnescapeHeader gives back each
// original name.
func TestEscapeHeadersCollision(t *testing.T) {
	for _, tc := range []struct {
		in, want map[string]string
	}{
		{
			in:   map[string]string{"ce-type": "a", "%ce-type": "b"},
			want: map[string]string{"%ce-type": "a", "%%25ce-type": "b"},
		},
		{
			in:   map[string]string{"ce-type": "a", "%ce-type": "b", "%%25ce-type": "c"},
			want: map[string]string{"%ce-type": "a", "%%25ce-type": "b", "%%25%2525ce-type": "c"},
		},
		{
			// No collision: a '%' name is delivered as it is.
			in:   map[string]string{"ce-type": "a", "%other": "b"},
			want: map[string]string{"%ce-type": "a", "%other": "b"},
		},
		{
			// Nothing to escape (what Switchboard publishes): unchanged.
			in:   map[string]string{"%ce-type": "a", "plain": "p"},
			want: map[string]string{"%ce-type": "a", "plain": "p"},
		},
	} {
		got := transport.EscapeHeaders(tc.in)
		if !maps.Equal(got, tc.want) {
			t.Errorf("EscapeHeaders(%q) = %q, want %q", tc.in, got, tc.want)
		}
		checkLossless(t, tc.in, got)
	}
}

func checkLossless(t *testing.T, in, got map[string]string) {
	t.Helper()
	if len(got) != len(in) {
		t.Fatalf("EscapeHeaders(%q) = %q: %d headers, want %d", in, got, len(got), len(in))
	}
	for k, v := range got {
		if transport.NeedsEscape(k, v) {
			t.Fatalf("EscapeHeaders(%q) = %q: %q still needs escaping", in, got, k)
		}
		if iv, ok := in[k]; ok && iv == v {
			continue // delivered as it is
		}
		n, uv, ok := transport.UnescapeHeader(k, v)
		if !ok || in[n] != uv {
			t.Fatalf("EscapeHeaders(%q) = %q: %q=%q is no header of the input", in, got, k, v)
		}
	}
}

func FuzzEscapeHeaders(f *testing.F) {
	f.Add("ce-type", "%ce-type", "%%25ce-type", "a")
	f.Add("caf\xe9", "%caf%E9", "x", "\xff")
	f.Fuzz(func(t *testing.T, a, b, c, v string) {
		in := map[string]string{a: v, b: v + "1", c: v + "2"}
		checkLossless(t, in, transport.EscapeHeaders(in))
	})
}
