package main

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"golang.org/x/perf/benchfmt"
)

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
