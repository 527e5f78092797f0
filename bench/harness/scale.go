package harness

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"
)

// MachineLine describes the Go version and the machine, for report headers.
func MachineLine() string {
	return fmt.Sprintf("%s on %s/%s, %d CPUs (GOMAXPROCS %d)", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
}

// ScaleRow is one measured row of the scale table in one round: a table
// ("keys", "subscriptions", "body", "members"), a transport, and the row's
// parameter (Param: keys, subscriptions, bytes or members).
type ScaleRow struct {
	Table     string
	Transport string
	Param     int
	M         map[string]float64 // metric name → value
	Err       error
}

// Scale holds the scale table's rows, per round.
type Scale struct {
	Rounds [][]ScaleRow
}

// scaleRun measures the rows of one table on one transport, in one round.
type scaleRun func(ctx context.Context, tr string, ep Endpoints, progress io.Writer) []ScaleRow

// ScaleTable measures every table of the scale table on every transport
// named, rounds times; within a round a table's rows run back to back, so
// that each row's ratio to its table's baseline row is taken under the
// same load.
func ScaleTable(ctx context.Context, ep Endpoints, transports []string, rounds int, progress io.Writer) *Scale {
	s := &Scale{}
	for round := range max(rounds, 1) {
		var rows []ScaleRow
		for _, t := range scaleTables {
			for _, tr := range transports {
				for _, r := range t.run(ctx, tr, ep, progress) {
					if progress != nil {
						status := fmtMetrics(r.M)
						if r.Err != nil {
							status = "ERROR " + r.Err.Error()
						}
						fmt.Fprintf(progress, "round %d  %-13s %-8s %8d  %s\n", round+1, r.Table, r.Transport, r.Param, status)
					}
					rows = append(rows, r)
				}
			}
		}
		s.Rounds = append(s.Rounds, rows)
	}
	return s
}

func fmtMetrics(m map[string]float64) string {
	var b strings.Builder
	for _, k := range sortedKeys(m) {
		fmt.Fprintf(&b, "%s=%.4g ", k, m[k])
	}
	return b.String()
}

// scaleCol is a column of a table: a value of a row, possibly relative to
// another row of the same round (the baseline).
type scaleCol struct {
	header string
	format string                                             // for fmtMed; "" means a count in thousands (fmtK)
	value  func(r ScaleRow, round []ScaleRow) (float64, bool) // false: no value
}

func metric(name string) func(ScaleRow, []ScaleRow) (float64, bool) {
	return func(r ScaleRow, _ []ScaleRow) (float64, bool) { v, ok := r.M[name]; return v, ok }
}

// relTo is name's value over the baseline row's (same table, transport
// and round, Param == base).
func relTo(name string, base int) func(ScaleRow, []ScaleRow) (float64, bool) {
	return func(r ScaleRow, round []ScaleRow) (float64, bool) {
		v, ok := r.M[name]
		if !ok {
			return 0, false
		}
		for _, b := range round {
			if b.Table == r.Table && b.Transport == r.Transport && b.Param == base && b.Err == nil && b.M[name] > 0 {
				return v / b.M[name], true
			}
		}
		return 0, false
	}
}

// over is a/b within the row.
func over(a, b string) func(ScaleRow, []ScaleRow) (float64, bool) {
	return func(r ScaleRow, _ []ScaleRow) (float64, bool) {
		x, ok1 := r.M[a]
		y, ok2 := r.M[b]
		if !ok1 || !ok2 || y == 0 {
			return 0, false
		}
		return x / y, true
	}
}

type scaleTableDef struct {
	name  string
	title string
	param func(int) string
	run   scaleRun
	cols  []scaleCol
	intro string
}

// Markdown writes one table per kind, one section per transport: medians
// over rounds (range in parentheses), ratios taken within each round.
func (s *Scale) Markdown(w io.Writer) {
	fmt.Fprintf(w, "%d round(s); median (min–max) over rounds; every ratio is taken within a round, then the median.\n", len(s.Rounds))
	for _, t := range scaleTables {
		fmt.Fprintf(w, "\n#### %s\n\n%s\n\n", t.title, t.intro)
		hdr := "| transport | " + t.name + " |"
		sep := "|---|---|"
		for _, c := range t.cols {
			hdr += " " + c.header + " |"
			sep += "---|"
		}
		fmt.Fprintln(w, hdr)
		fmt.Fprintln(w, sep)
		type rk struct {
			tr    string
			param int
		}
		var order []rk
		seen := map[rk]bool{}
		errs := map[rk][]string{}
		for _, round := range s.Rounds {
			for _, r := range round {
				if r.Table != t.name {
					continue
				}
				k := rk{r.Transport, r.Param}
				if !seen[k] {
					seen[k] = true
					order = append(order, k)
				}
				if r.Err != nil {
					errs[k] = append(errs[k], r.Err.Error())
				}
			}
		}
		for _, k := range order {
			line := "| " + k.tr + " | " + t.param(k.param) + " |"
			for ci, c := range t.cols {
				var xs []float64
				for _, round := range s.Rounds {
					for _, r := range round {
						if r.Table == t.name && r.Transport == k.tr && r.Param == k.param && r.Err == nil {
							if v, ok := c.value(r, round); ok {
								xs = append(xs, v)
							}
						}
					}
				}
				switch {
				case len(xs) == 0 && len(errs[k]) > 0 && ci == 0:
					line += " n/a: " + shortErr(errs[k][0]) + " |"
				case c.format == "":
					line += " " + fmtK(xs) + " |"
				default:
					line += " " + fmtMed(xs, c.format) + " |"
				}
			}
			fmt.Fprintln(w, line)
		}
	}
}

func shortErr(s string) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// perTransport picks a value by transport, the in-memory one or the
// brokers' one.
func perTransport[T any](tr string, inmem, broker T) T {
	if tr == "inmem" {
		return inmem
	}
	return broker
}

// rowTimeout bounds one row's run.
const rowTimeout = 2 * time.Minute
