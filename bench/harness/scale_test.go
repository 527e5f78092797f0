package harness

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestScaleTableInMem runs every table of the scale table once, tiny, in
// memory, and checks that every row measured something.
func TestScaleTableInMem(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	scaleDivisor = 1000
	defer func() { scaleDivisor = 1 }()
	s := ScaleTable(t.Context(), Endpoints{}, []string{"inmem"}, 1, nil)
	for _, r := range s.Rounds[0] {
		if r.Err != nil && !(r.Table == "body" && strings.Contains(r.Err.Error(), "too large")) {
			t.Errorf("%s/%s/%d: %v", r.Table, r.Transport, r.Param, r.Err)
		}
	}
	var out bytes.Buffer
	s.Markdown(&out)
	for _, want := range []string{"Distinct keys", "Subscriptions", "Body size", "Members", "| inmem | 1,000 |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestSoakInMem runs the soak for a second and checks its samples.
func TestSoakInMem(t *testing.T) {
	o := SoakOptions{Duration: time.Second, Rate: 1000, Requests: 10, Samples: 2}
	samples, err := Soak(t.Context(), "inmem", Endpoints{}, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 2 || samples[1].Published == 0 || samples[1].Handled == 0 {
		t.Fatalf("samples %+v", samples)
	}
	var out bytes.Buffer
	SoakMarkdown(&out, "inmem", o, samples)
	if !strings.Contains(out.String(), "| 1s |") {
		t.Errorf("table:\n%s", out.String())
	}
}
