package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

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
