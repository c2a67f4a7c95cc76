// Command benchtable turns `go test -bench` output into govm's comparison
// table (make bench): one row per measure, a column per VMM (govm and the
// peers it is measured against: QEMU, gokvm, the host's own figures, the
// raw KVM_RUN loop), each cell the median of its samples with their min and
// max, govm's ratio to each peer, and the goal it meets or misses
// (goals.json, or -goals FILE). A second table lists the hot-path micro-benchmarks with their
// allocations. It prints both and writes them as JSON.
//
// Where the figures come from, in the benchmark output:
//   - a metric named PEER.MEASURE (b.ReportMetric(v, "qemu.boot-1cpu-ms"))
//     is a sample of MEASURE for PEER; PEER.MEASURE.min and .max, where a
//     benchmark took its samples itself, give their range;
//   - a benchmark whose last name element is a peer
//     (BenchmarkExitRoundTrip/pio/raw) gives a sample of its ns/op;
//   - a metric named paired-PEER.MEASURE is the median of govm's ratios
//     to PEER taken round by round, each round running both on the same
//     host (with .min and .max): it is govm's ratio to PEER for MEASURE,
//     in place of the ratio of the two medians, since nested figures
//     swing with the emulated host from round to round far more than
//     the two VMMs differ within one.
//
// The benchmark lines are read with golang.org/x/perf's benchfmt, the
// format's reference reader; lines starting "BENCH-NOTE " are notes for
// the table's foot.
//
// Usage: go test -bench . ./... | go run ./internal/benchtable -json build/bench.json
package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// peers are the table's columns, govm first.
var peers = []string{"govm", "qemu", "gokvm", "host", "raw"}

func isPeer(s string) bool {
	for _, p := range peers {
		if p == s {
			return true
		}
	}
	return false
}

// goal is a bound on govm's ratio to one peer, for the measures whose
// names start with Prefix.
type goal struct {
	Prefix string  `json:"prefix"`
	Peer   string  `json:"peer"`
	Bound  float64 `json:"bound"`
	AtMost bool    `json:"at_most"` // the ratio must be at most Bound (else at least)
}

func (g goal) String() string {
	op := "≥"
	if g.AtMost {
		op = "≤"
	}
	return fmt.Sprintf("%s%.2f× %s", op, g.Bound, g.Peer)
}

// absGoal is a bound on govm's own figure (its median at most Max) for
// the measures with this prefix and suffix.
type absGoal struct {
	Prefix string  `json:"prefix"`
	Suffix string  `json:"suffix"`
	Max    float64 `json:"max"`
}

// goals are what the table judges govm's figures against.
type goals struct {
	Ratio    []goal    `json:"ratio"`
	Absolute []absGoal `json:"absolute"`
}

//go:embed goals.json
var defaultGoals []byte

// loadGoals reads a goals file, refusing unknown fields and peers.
func loadGoals(b []byte) (goals, error) {
	var g goals
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&g); err != nil {
		return goals{}, fmt.Errorf("goals: %w", err)
	}
	for _, r := range g.Ratio {
		if !isPeer(r.Peer) || r.Peer == "govm" || r.Bound <= 0 {
			return goals{}, fmt.Errorf("goals: bad ratio goal %+v", r)
		}
	}
	return g, nil
}

// countPrefix marks a measure that counts events (boots that failed):
// a ratio of two counts says nothing, so it gets none.
const countPrefix = "failed-"

// Stat is a cell: the median of its samples, their range and count.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

// Row is one measure.
type Row struct {
	Measure string             `json:"measure"`
	Cells   map[string]Stat    `json:"cells"`
	Ratios  map[string]float64 `json:"ratios,omitempty"` // govm's median over the peer's, or the paired median
	// Paired are govm's per-round ratios to each peer that reported them
	// (paired-PEER.MEASURE); Ratios then holds their median.
	Paired map[string]Stat `json:"paired,omitempty"`
	Goals  []GoalResult    `json:"goals,omitempty"`
}

// GoalResult says whether govm meets one goal.
type GoalResult struct {
	Goal string `json:"goal"`
	Met  bool   `json:"met"`
}

// HotPath is a micro-benchmark's figures.
type HotPath struct {
	Name        string  `json:"name"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	Runs        int     `json:"runs"`
}

// Table is the whole result.
type Table struct {
	Rows     []Row     `json:"rows"`
	HotPaths []HotPath `json:"hot_paths"`
	Notes    []string  `json:"notes,omitempty"` // why figures are missing (BENCH-NOTE lines)
}

// samples collects figures while parsing.
type samples struct {
	order  []string                        // measures in first-seen order
	vals   map[string]map[string][]float64 // measure -> peer -> samples
	bounds map[string]map[string][2]float64
	paired map[string]map[string][]float64 // measure -> peer -> per-round ratio medians
	pbound map[string]map[string][2]float64
	hot    map[string]map[string][]float64 // bench -> unit -> samples
	hotOrd []string
	notes  []string
}

func newSamples() *samples {
	return &samples{vals: map[string]map[string][]float64{}, bounds: map[string]map[string][2]float64{},
		paired: map[string]map[string][]float64{}, pbound: map[string]map[string][2]float64{},
		hot: map[string]map[string][]float64{}}
}

func (s *samples) add(measure, peer string, v float64) {
	if s.vals[measure] == nil {
		s.order = append(s.order, measure)
	}
	appendTo(s.vals, measure, peer, v)
}

// appendTo adds v to the samples kept for measure and peer.
func appendTo(vals map[string]map[string][]float64, measure, peer string, v float64) {
	if vals[measure] == nil {
		vals[measure] = map[string][]float64{}
	}
	vals[measure][peer] = append(vals[measure][peer], v)
}

func (s *samples) bound(measure, peer string, i int, v float64) {
	widen(s.bounds, measure, peer, i, v)
}

// widen stretches the range kept for measure and peer to take in v as its
// minimum (i 0) or maximum (i 1).
func widen(bounds map[string]map[string][2]float64, measure, peer string, i int, v float64) {
	if bounds[measure] == nil {
		bounds[measure] = map[string][2]float64{}
	}
	b, ok := bounds[measure][peer]
	if !ok {
		b = [2]float64{v, v}
	}
	if i == 0 {
		b[0] = min(b[0], v)
	} else {
		b[1] = max(b[1], v)
	}
	bounds[measure][peer] = b
}

// pair records a paired ratio (i -1), or its minimum (0) or maximum (1).
func (s *samples) pair(measure, peer string, i int, v float64) {
	if i >= 0 {
		widen(s.pbound, measure, peer, i, v)
		return
	}
	appendTo(s.paired, measure, peer, v)
}

// splitMetric parses PEER.MEASURE[.min|.max]: the peer, the measure, and
// whether the figure is a sample (-1) or its samples' minimum (0) or
// maximum (1).
func splitMetric(unit string) (peer, measure string, bound int, ok bool) {
	peer, measure, ok = strings.Cut(unit, ".")
	if !ok || !isPeer(peer) {
		return "", "", 0, false
	}
	if m, cut := strings.CutSuffix(measure, ".min"); cut {
		return peer, m, 0, true
	}
	if m, cut := strings.CutSuffix(measure, ".max"); cut {
		return peer, m, 1, true
	}
	return peer, measure, -1, true
}

// pairedPrefix marks a metric as govm's per-round ratio to a peer.
const pairedPrefix = "paired-"

// goUnits are the units of Go's own benchmark figures.
var goUnits = map[string]bool{"ns/op": true, "B/op": true, "allocs/op": true, "MB/s": true}

// parse reads `go test -bench` output.
func parse(r io.Reader) (*samples, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	s := newSamples()
	// Notes come out here; so do the lines `go test -bench -v` prints
	// with a benchmark's name alone before its logs, which benchfmt
	// would take for a result missing its figures.
	var results bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if note, ok := strings.CutPrefix(line, "BENCH-NOTE "); ok {
			s.notes = append(s.notes, note)
			continue
		}
		if f := strings.Fields(line); len(f) == 1 && strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		results.WriteString(line)
		results.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	br := benchfmt.NewReader(&results, "bench")
	for br.Scan() {
		switch rec := br.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, rec
		case *benchfmt.Result:
			if err := s.addResult(rec); err != nil {
				return nil, err
			}
		}
	}
	return s, br.Err()
}

// addResult files one benchmark line's figures.
func (s *samples) addResult(res *benchfmt.Result) error {
	// The name without the GOMAXPROCS suffix: base, then /sub parts.
	base, parts := res.Name.Parts()
	name := string(base)
	for _, p := range parts {
		if bytes.HasPrefix(p, []byte("/")) {
			name += string(p)
		}
	}
	elems := strings.Split(name, "/")
	last := elems[len(elems)-1]
	// A micro-benchmark reports only Go's own units; one that reports
	// figures of its own is a measure, not a hot path.
	micro := true
	for _, v := range res.Values {
		if !goUnits[origUnit(v)] {
			micro = false
		}
	}
	if micro && res.Iters == 1 {
		// A benchmark run once with Go's units only is a driver of
		// others (e2e's BenchmarkKVMUnitBenches, which prints their
		// lines), not a hot path.
		return nil
	}
	for _, val := range res.Values {
		unit, v := origUnit(val), origValue(val)
		if rest, paired := strings.CutPrefix(unit, pairedPrefix); paired {
			if peer, measure, bound, ok := splitMetric(rest); ok {
				s.pair(measure, peer, bound, v)
				continue
			}
		} else if peer, measure, bound, ok := splitMetric(unit); ok {
			if bound < 0 {
				s.add(measure, peer, v)
			} else {
				s.bound(measure, peer, bound, v)
			}
			continue
		}
		if len(elems) > 1 && isPeer(last) {
			if unit == "ns/op" {
				s.add(strings.Join(elems[:len(elems)-1], "/")+" ns/op", last, v)
			}
			continue
		}
		if !goUnits[unit] {
			// A figure of govm's own (VMs/s, first-KVM_RUN-ms).
			s.add(unit, "govm", v)
			continue
		}
		if !micro {
			continue
		}
		if s.hot[name] == nil {
			s.hot[name] = map[string][]float64{}
			s.hotOrd = append(s.hotOrd, name)
		}
		s.hot[name][unit] = append(s.hot[name][unit], v)
	}
	return nil
}

// origUnit and origValue are a figure as the benchmark printed it:
// benchfmt tidies units (ns/op to sec/op), the table keeps Go's.
func origUnit(v benchfmt.Value) string {
	if v.OrigUnit != "" {
		return v.OrigUnit
	}
	return v.Unit
}

func origValue(v benchfmt.Value) float64 {
	if v.OrigUnit != "" {
		return v.OrigValue
	}
	return v.Value
}

func stat(v []float64) Stat {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// statWithin is stat(v) with its range widened to the min and max the
// benchmark reported for peer, if it did.
func statWithin(v []float64, bounds map[string][2]float64, peer string) Stat {
	st := stat(v)
	if b, ok := bounds[peer]; ok {
		st.Min, st.Max = min(st.Min, b[0]), max(st.Max, b[1])
	}
	return st
}

// build computes the table from the samples.
func build(s *samples, gl goals) Table {
	t := Table{Notes: s.notes}
	for _, m := range s.order {
		r := Row{Measure: m, Cells: map[string]Stat{}, Ratios: map[string]float64{}, Paired: map[string]Stat{}}
		for peer, v := range s.vals[m] {
			r.Cells[peer] = statWithin(v, s.bounds[m], peer)
		}
		g, ok := r.Cells["govm"]
		if ok && !strings.HasPrefix(m, countPrefix) {
			for _, p := range peers[1:] {
				if c, ok := r.Cells[p]; ok && c.Median != 0 {
					r.Ratios[p] = g.Median / c.Median
				}
				if v := s.paired[m][p]; len(v) > 0 {
					st := statWithin(v, s.pbound[m], p)
					r.Paired[p] = st
					r.Ratios[p] = st.Median
				}
			}
			for _, gr := range gl.Ratio {
				ratio, ok := r.Ratios[gr.Peer]
				if !ok || !strings.HasPrefix(m, gr.Prefix) {
					continue
				}
				met := ratio >= gr.Bound
				if gr.AtMost {
					met = ratio <= gr.Bound
				}
				r.Goals = append(r.Goals, GoalResult{Goal: gr.String(), Met: met})
			}
			for _, a := range gl.Absolute {
				if strings.HasPrefix(m, a.Prefix) && strings.HasSuffix(m, a.Suffix) {
					r.Goals = append(r.Goals, GoalResult{Goal: fmt.Sprintf("≤%g", a.Max), Met: g.Median <= a.Max})
				}
			}
		}
		t.Rows = append(t.Rows, r)
	}
	for _, n := range s.hotOrd {
		h := HotPath{Name: n}
		if v := s.hot[n]["ns/op"]; len(v) > 0 {
			h.NsPerOp, h.Runs = stat(v).Median, len(v)
		}
		if v := s.hot[n]["B/op"]; len(v) > 0 {
			h.BytesPerOp = stat(v).Median
		}
		if v := s.hot[n]["allocs/op"]; len(v) > 0 {
			h.AllocsPerOp = stat(v).Median
		}
		t.HotPaths = append(t.HotPaths, h)
	}
	return t
}

func cell(st Stat, ok bool) string {
	if !ok {
		return "-"
	}
	if st.N == 1 && st.Min == st.Max {
		return fmtNum(st.Median)
	}
	return fmt.Sprintf("%s [%s..%s]", fmtNum(st.Median), fmtNum(st.Min), fmtNum(st.Max))
}

func fmtNum(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// write prints the table as aligned text.
func write(w io.Writer, t Table) {
	cols := []string{"measure"}
	used := map[string]bool{}
	for _, r := range t.Rows {
		for p := range r.Cells {
			used[p] = true
		}
	}
	var shown []string
	for _, p := range peers {
		if used[p] {
			shown = append(shown, p)
			cols = append(cols, p)
		}
	}
	var peersShown []string // the columns govm is divided by
	if len(shown) > 1 {
		peersShown = shown[1:]
	}
	for _, p := range peersShown {
		cols = append(cols, "govm/"+p)
	}
	cols = append(cols, "goals")
	lines := [][]string{cols}
	for _, r := range t.Rows {
		l := []string{r.Measure}
		for _, p := range shown {
			st, ok := r.Cells[p]
			l = append(l, cell(st, ok))
		}
		for _, p := range peersShown {
			if st, ok := r.Paired[p]; ok {
				l = append(l, fmt.Sprintf("%.2f [%.2f..%.2f] paired", st.Median, st.Min, st.Max))
			} else if v, ok := r.Ratios[p]; ok {
				l = append(l, fmt.Sprintf("%.2f", v))
			} else {
				l = append(l, "-")
			}
		}
		var gs []string
		for _, g := range r.Goals {
			mark := "met"
			if !g.Met {
				mark = "MISSED"
			}
			gs = append(gs, g.Goal+" "+mark)
		}
		l = append(l, strings.Join(gs, ", "))
		lines = append(lines, l)
	}
	printAligned(w, lines)
	if len(t.HotPaths) > 0 {
		fmt.Fprintln(w)
		hl := [][]string{{"hot path", "ns/op", "B/op", "allocs/op", "runs"}}
		for _, h := range t.HotPaths {
			hl = append(hl, []string{h.Name, fmtNum(h.NsPerOp), fmtNum(h.BytesPerOp), fmtNum(h.AllocsPerOp), strconv.Itoa(h.Runs)})
		}
		printAligned(w, hl)
	}
	if len(t.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.Notes {
			fmt.Fprintln(w, "note:", n)
		}
	}
}

func printAligned(w io.Writer, lines [][]string) {
	width := map[int]int{}
	for _, l := range lines {
		for i, c := range l {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, l := range lines {
		var b strings.Builder
		for i, c := range l {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(c)
			if i < len(l)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-len([]rune(c))))
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

func main() {
	jsonOut := flag.String("json", "", "also write the table as JSON to this file")
	goalsFile := flag.String("goals", "", "judge the figures against this goals file (default: the built-in goals.json)")
	flag.Parse()
	gb := defaultGoals
	if *goalsFile != "" {
		b, err := os.ReadFile(*goalsFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		gb = b
	}
	gl, err := loadGoals(gb)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	in := io.Reader(os.Stdin)
	if flag.NArg() == 1 {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	s, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	t := build(s, gl)
	if len(t.Rows) == 0 {
		fmt.Fprintln(os.Stderr, "benchtable: no benchmark figures in the input (a run that failed or has not finished?)")
		os.Exit(1)
	}
	write(os.Stdout, t)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(t, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(1)
		}
	}
}
