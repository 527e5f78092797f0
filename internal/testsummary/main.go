// Command testsummary reads `go test -json` on stdin and prints what
// `go test` prints without -v (each package's closing "ok"/"FAIL" line,
// the output of failed tests, build errors), then a summary: the lines
// tests log with "RESULT " (figures of record, such as the cluster tests'
// loss, duplicates and recovery times), every skipped test with its
// reason, and every failed test. scripts/test.sh
// pipes the test run through it, so that skips (a broker not found, a
// test that needs Docker) are visible without -v.
//
// Usage:
//
//	go test -json ./... | go run ./internal/testsummary [-v] [-slow 2m]
//
// -v prints every test's output, as go test -v does. -slow D reports, every
// D, the tests that have been running longer than D, so that a test stuck
// on a hung broker is named long before go test's -timeout.
//
// Exit status: 1 when a test or a build failed (or the input was not
// go test -json), else 0.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// event is one line of go test -json (cmd/test2json's TestEvent, and the
// build events of go build -json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build events
}

// result is what the summary lists of one test.
type result struct {
	pkg, test, reason string
}

type summary struct {
	w       io.Writer
	verbose bool

	mu      sync.Mutex
	output  map[string][]string  // package/test → output lines so far
	running map[string]time.Time // package/test → when it (re)started
	skipped []result
	failed  []result
	results []string // "RESULT ..." lines that tests log (figures of record)
	broken  bool     // a build failed or a line was not JSON
}

func newSummary(w io.Writer, verbose bool) *summary {
	return &summary{w: w, verbose: verbose, output: map[string][]string{}, running: map[string]time.Time{}}
}

func key(pkg, test string) string { return pkg + "\x00" + test }

// line handles one line of input.
func (s *summary) line(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var e event
	if err := json.Unmarshal(b, &e); err != nil || (e.Action == "" && e.ImportPath == "") {
		// Not an event (go vet output, a panic before the test binary
		// started): pass it through.
		fmt.Fprintf(s.w, "%s\n", b)
		if len(strings.TrimSpace(string(b))) > 0 {
			s.broken = true
		}
		return
	}
	switch e.Action {
	case "build-output":
		fmt.Fprint(s.w, e.Output)
		return
	case "build-fail":
		s.broken = true
		return
	}
	k := key(e.Package, e.Test)
	if e.Test == "" {
		// The package's own lines: "ok  pkg 1.2s", "FAIL pkg", "PASS",
		// "?  pkg [no test files]", panics outside a test.
		if e.Action == "output" && (s.verbose || strings.TrimSpace(e.Output) != "PASS") {
			fmt.Fprint(s.w, e.Output)
		}
		if e.Action == "fail" {
			s.broken = true // e.g. a timeout panic, a TestMain failure
		}
		return
	}
	switch e.Action {
	case "run", "cont":
		s.running[k] = time.Now()
	case "pause":
		delete(s.running, k)
	case "output":
		if i := strings.Index(e.Output, "RESULT "); i >= 0 && e.Test != "" {
			s.results = append(s.results, e.Test+": "+strings.TrimSpace(e.Output[i+len("RESULT "):]))
		}
		if s.verbose {
			fmt.Fprint(s.w, e.Output)
			return
		}
		s.output[k] = append(s.output[k], e.Output)
	case "pass":
		delete(s.running, k)
		delete(s.output, k)
	case "skip":
		delete(s.running, k)
		s.skipped = append(s.skipped, result{e.Package, e.Test, skipReason(s.output[k])})
		delete(s.output, k)
	case "fail":
		delete(s.running, k)
		if !s.verbose {
			for _, o := range s.output[k] {
				if !isFramingLine(o) {
					fmt.Fprint(s.w, o)
				}
			}
		}
		s.failed = append(s.failed, result{pkg: e.Package, test: e.Test})
		delete(s.output, k)
	}
}

// fileLine is the "file.go:12: " prefix of a test's log line.
var fileLine = regexp.MustCompile(`^[\w./-]+\.go:\d+:\s*`)

// skipReason finds the message of t.Skip in a test's output: its lines
// but go test's own ("=== RUN", "--- SKIP"), without the file:line
// prefix and the banner's asterisks, joined.
func skipReason(out []string) string {
	var parts []string
	for _, chunk := range out {
		for _, l := range strings.Split(chunk, "\n") {
			t := strings.TrimSpace(l)
			if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") || strings.Trim(t, "*") == "" {
				continue
			}
			t = fileLine.ReplaceAllString(t, "")
			if t = strings.TrimSpace(strings.Trim(t, "*")); t != "" {
				parts = append(parts, t)
			}
		}
	}
	r := strings.Join(parts, " ")
	if len(r) > 300 {
		r = r[:297] + "..."
	}
	if r == "" {
		r = "(no reason given)"
	}
	return r
}

// isFramingLine reports whether a line is one go test prints only with
// -v ("=== RUN", "=== PAUSE", "=== CONT", "=== NAME").
func isFramingLine(l string) bool {
	return strings.HasPrefix(l, "=== ")
}

// slow reports the tests that have been running for longer than d.
func (s *summary) slow(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for k, since := range s.running {
		if el := time.Since(since); el > d {
			pkg, test, _ := strings.Cut(k, "\x00")
			names = append(names, fmt.Sprintf("%s %s (%s)", pkg, test, el.Round(time.Second)))
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(s.w, "testsummary: still running: %s\n", n)
	}
}

// finish prints the summary and reports whether the run passed.
func (s *summary) finish() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	byName := func(rs []result) {
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].pkg != rs[j].pkg {
				return rs[i].pkg < rs[j].pkg
			}
			return rs[i].test < rs[j].test
		})
	}
	byName(s.skipped)
	byName(s.failed)
	if len(s.results) > 0 {
		fmt.Fprintf(s.w, "\n== results that tests logged (RESULT lines)\n")
		for _, r := range s.results {
			fmt.Fprintln(s.w, r)
		}
	}
	fmt.Fprintf(s.w, "\n== %d skipped tests\n", len(s.skipped))
	for _, r := range s.skipped {
		fmt.Fprintf(s.w, "SKIP %s %s: %s\n", r.pkg, r.test, r.reason)
	}
	if len(s.failed) > 0 {
		fmt.Fprintf(s.w, "== %d failed tests\n", len(s.failed))
		for _, r := range s.failed {
			fmt.Fprintf(s.w, "FAIL %s %s\n", r.pkg, r.test)
		}
	}
	return len(s.failed) == 0 && !s.broken
}

func main() {
	verbose := flag.Bool("v", false, "print every test's output, as go test -v does")
	slowAfter := flag.Duration("slow", 2*time.Minute, "report tests running longer than this, every this often (0: never)")
	flag.Parse()
	s := newSummary(os.Stdout, *verbose)
	if *slowAfter > 0 {
		t := time.NewTicker(*slowAfter)
		defer t.Stop()
		go func() {
			for range t.C {
				s.slow(*slowAfter)
			}
		}()
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		s.line(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		os.Exit(1)
	}
	if !s.finish() {
		os.Exit(1)
	}
}
