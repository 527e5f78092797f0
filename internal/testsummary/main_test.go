package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSummaryOfARealRun runs go test -json on a small package with a
// passing, a skipped (with a broker banner) and a failing test, pipes it
// through the summary, and checks the lines CI relies on are kept and the
// skips are listed with their reasons.
func TestSummaryOfARealRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test")
	}
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/sample\n\ngo 1.22\n")
	write("sample_test.go", `package sample

import "testing"

func TestPasses(t *testing.T) { t.Log("quiet unless it fails") }

func TestFigures(t *testing.T) { t.Logf("RESULT 10000 published, 0 lost") }

func TestSkipsForABroker(t *testing.T) {
	t.Skip("\n*****\n*** NO RABBITMQ BROKER: 127.0.0.1:5672 does not answer\n*****")
}

func TestFails(t *testing.T) { t.Error("boom") }

func TestParent(t *testing.T) {
	t.Run("child", func(t *testing.T) { t.Skip("needs Docker") })
}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	in, _ := cmd.Output() // exits 1: TestFails
	var out bytes.Buffer
	s := newSummary(&out, false)
	for _, l := range bytes.Split(in, []byte("\n")) {
		if len(l) > 0 {
			s.line(l)
		}
	}
	if s.finish() {
		t.Error("finish reported success for a failing run")
	}
	got := out.String()
	for _, want := range []string{
		"--- FAIL: TestFails",
		"boom",
		"FAIL\texample.com/sample",
		"== 2 skipped tests",
		"SKIP example.com/sample TestParent/child: needs Docker",
		"SKIP example.com/sample TestSkipsForABroker: NO RABBITMQ BROKER: 127.0.0.1:5672 does not answer",
		"== 1 failed tests",
		"FAIL example.com/sample TestFails",
		"== results that tests logged (RESULT lines)",
		"TestFigures: 10000 published, 0 lost",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "quiet unless it fails") || strings.Contains(got, "=== RUN") {
		t.Errorf("a passing test's output is printed without -v:\n%s", got)
	}
}

func TestNotJSONIsPassedThroughAndFails(t *testing.T) {
	var out bytes.Buffer
	s := newSummary(&out, false)
	s.line([]byte("# example.com/x\n./x.go:1: syntax error"))
	s.line([]byte(`{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}`))
	if s.finish() {
		t.Error("finish reported success after non-JSON output")
	}
	if !strings.Contains(out.String(), "syntax error") || !strings.Contains(out.String(), "ok  \tp\t0.1s") {
		t.Errorf("output:\n%s", out.String())
	}
}
