package harness

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Report aggregates the results of several rounds.
type Report struct {
	Rounds [][]Result // per round, every case's result
}

type key struct{ transport, pattern, impl string }

func (rp *Report) byKey() (map[key][]Result, []string) {
	m := map[key][]Result{}
	var trs []string
	seen := map[string]bool{}
	for _, round := range rp.Rounds {
		for _, r := range round {
			k := key{r.Case.Transport, r.Case.Pattern, r.Case.Impl}
			m[k] = append(m[k], r)
			if !seen[r.Case.Transport] {
				seen[r.Case.Transport] = true
				trs = append(trs, r.Case.Transport)
			}
		}
	}
	return m, trs
}

// ratios returns, per round in which both ran, a(r)/b(r).
func (rp *Report) ratios(tr, pattern, implA, implB string, f func(Result) float64) []float64 {
	var out []float64
	for _, round := range rp.Rounds {
		var a, b *Result
		for i := range round {
			r := &round[i]
			if r.Case.Transport != tr || r.Case.Pattern != pattern || r.Err != nil {
				continue
			}
			switch r.Case.Impl {
			case implA:
				a = r
			case implB:
				b = r
			}
		}
		if a != nil && b != nil && f(*b) > 0 {
			out = append(out, f(*a)/f(*b))
		}
	}
	return out
}

func vals(rs []Result, f func(Result) float64) []float64 {
	var out []float64
	for _, r := range rs {
		if r.Err == nil {
			out = append(out, f(r))
		}
	}
	return out
}

func tput(r Result) float64   { return r.MsgsPerSec }
func p50(r Result) float64    { return float64(r.P50) / float64(time.Millisecond) }
func p99(r Result) float64    { return float64(r.P99) / float64(time.Millisecond) }
func allocs(r Result) float64 { return r.AllocsPerOp }

func fmtMed(xs []float64, format string) string {
	if len(xs) == 0 {
		return "—"
	}
	lo, hi := Spread(xs)
	if len(xs) == 1 {
		return fmt.Sprintf(format, xs[0])
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", Median(xs), lo, hi)
}

func fmtK(xs []float64) string {
	if len(xs) == 0 {
		return "—"
	}
	k := make([]float64, len(xs))
	for i, x := range xs {
		k[i] = x / 1000
	}
	return fmtMed(k, "%.1fk")
}

func ratio(xs []float64) string {
	if len(xs) == 0 {
		return "—"
	}
	return fmtMed(xs, "%.2f×")
}

// Markdown writes the ratio tables: medians over rounds, with the range
// (min–max) in parentheses. Ratios are computed within each round, then
// their median taken.
func (rp *Report) Markdown(w io.Writer) {
	m, trs := rp.byKey()
	fmt.Fprintf(w, "%d rounds; median (min–max) over rounds; ratios are taken within each round, then the median.\n", len(rp.Rounds))
	for _, tr := range trs {
		fmt.Fprintf(w, "\n### %s\n\n", tr)
		fmt.Fprintf(w, "Throughput, msgs/s (higher is better); allocations per message (whole process).\n\n")
		fmt.Fprintf(w, "| pattern | switchboard | raw | watermill | sb / raw | sb / watermill | allocs/msg sb · raw · wm |\n")
		fmt.Fprintf(w, "|---|---|---|---|---|---|---|\n")
		for _, p := range []string{Publish, PubSub, RRThroughput} {
			sb, raw, wm := m[key{tr, p, Switchboard}], m[key{tr, p, Raw}], m[key{tr, p, Watermill}]
			if len(sb)+len(raw)+len(wm) == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s · %s · %s |\n", p,
				fmtK(vals(sb, tput)), fmtK(vals(raw, tput)), fmtK(vals(wm, tput)),
				ratio(rp.ratios(tr, p, Switchboard, Raw, tput)), ratio(rp.ratios(tr, p, Switchboard, Watermill, tput)),
				med1(vals(sb, allocs)), med1(vals(raw, allocs)), med1(vals(wm, allocs)))
		}
		for _, p := range []string{Publish, PubSub, RRThroughput} {
			o := m[key{tr, p, RawUnbatched}]
			if len(o) == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s (vs %s) | %s | %s | — | %s | — | %s · %s · — |\n", p, RawUnbatched,
				fmtK(vals(m[key{tr, p, Switchboard}], tput)), fmtK(vals(o, tput)),
				ratio(rp.ratios(tr, p, Switchboard, RawUnbatched, tput)),
				med1(vals(m[key{tr, p, Switchboard}], allocs)), med1(vals(o, allocs)))
		}
		fmt.Fprintf(w, "\nLatency, ms (lower is better): one message at a time (latency: publish call → handler; rr-latency: request round trip; delay: lateness of delayed messages, handler entry − DeliverAt, Switchboard only).\n\n")
		fmt.Fprintf(w, "| pattern | sb p50 | raw p50 | wm p50 | sb p99 | raw p99 | wm p99 | p50 sb / raw | p50 sb / wm | allocs/msg sb · raw · wm |\n")
		fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
		for _, p := range []string{Latency, RRLatency, Delay} {
			sb, raw, wm := m[key{tr, p, Switchboard}], m[key{tr, p, Raw}], m[key{tr, p, Watermill}]
			if len(sb)+len(raw)+len(wm) == 0 {
				continue
			}
			f := "%.3f"
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s · %s · %s |\n", p,
				fmtMed(vals(sb, p50), f), fmtMed(vals(raw, p50), f), fmtMed(vals(wm, p50), f),
				fmtMed(vals(sb, p99), f), fmtMed(vals(raw, p99), f), fmtMed(vals(wm, p99), f),
				ratio(rp.ratios(tr, p, Switchboard, Raw, p50)), ratio(rp.ratios(tr, p, Switchboard, Watermill, p50)),
				med1(vals(sb, allocs)), med1(vals(raw, allocs)), med1(vals(wm, allocs)))
		}
	}
	rp.targets(w, m, trs)
	var errs []string
	for _, round := range rp.Rounds {
		for _, r := range round {
			if r.Err != nil {
				errs = append(errs, fmt.Sprintf("- %s: %v", r.Case.Name(), r.Err))
			}
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nErrors:\n%s\n", strings.Join(errs, "\n"))
	}
}

func med1(xs []float64) string {
	if len(xs) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", Median(xs))
}

func (rp *Report) targets(w io.Writer, m map[key][]Result, trs []string) {
	fmt.Fprintf(w, "\n### Targets (median of per-round ratios)\n\n")
	fmt.Fprintf(w, "The raw-client targets apply to brokers; in memory the raw column is the transport without package messaging (the layer's own cost), shown above but not a target.\n\n")
	fmt.Fprintf(w, "| target | transport | measured | met |\n|---|---|---|---|\n")
	mark := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, tr := range trs {
		// In memory there is no raw client: the raw column is the inmem
		// transport without package messaging, i.e. the layer's own cost,
		// which the raw-client targets do not cover.
		rawTargets := tr != "inmem"
		for _, p := range []string{Publish, PubSub, RRThroughput} {
			if r := rp.ratios(tr, p, Switchboard, Raw, tput); rawTargets && len(r) > 0 {
				fmt.Fprintf(w, "| %s throughput ≥ 0.9× raw | %s | %.2f× | %s |\n", p, tr, Median(r), mark(Median(r) >= 0.9))
			}
		}
		for _, p := range []string{Publish, PubSub} {
			if r := rp.ratios(tr, p, Switchboard, Watermill, tput); len(r) > 0 {
				fmt.Fprintf(w, "| %s throughput ≥ 2× Watermill | %s | %.2f× | %s |\n", p, tr, Median(r), mark(Median(r) >= 2))
			}
		}
		if r := rp.ratios(tr, RRLatency, Switchboard, Raw, p50); rawTargets && len(r) > 0 {
			fmt.Fprintf(w, "| request/reply p50 ≤ 1.3× raw | %s | %.2f× | %s |\n", tr, Median(r), mark(Median(r) <= 1.3))
		}
		if tr == "inmem" {
			if a := vals(m[key{tr, PubSub, Switchboard}], allocs); len(a) > 0 {
				fmt.Fprintf(w, "| publish+consume ≤ 5 allocs/msg | %s | %.1f | %s |\n", tr, Median(a), mark(Median(a) <= 5))
			}
		}
	}
}
