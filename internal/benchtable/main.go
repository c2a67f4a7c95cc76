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
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
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
