package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkExitRoundTrip/pio/raw-2     	  100000	      7700 ns/op	       0 B/op	       0 allocs/op
BenchmarkExitRoundTrip/pio/raw-2     	  100000	      7900 ns/op	       0 B/op	       0 allocs/op
BenchmarkExitRoundTrip/pio/govm-2    	  100000	      8100 ns/op	       0 B/op	       0 allocs/op
BenchmarkExitRoundTrip/pio/govm-2    	  100000	      8500 ns/op	       0 B/op	       0 allocs/op
BenchmarkVirtqueuePop-2              	 5000000	       210 ns/op	       0 B/op	       0 allocs/op
BenchmarkVirtqueuePop-2              	 5000000	       230 ns/op	       0 B/op	       0 allocs/op
BenchmarkStartup-2                   	      30	  30000000 ns/op	         9.5 first-KVM_RUN-ms	         6.6 overhead-MiB	        33 VMs/s
BenchmarkBoot-2                      	       1	 1000 ns/op	 20000 govm.boot-1cpu-ms	 19000 govm.boot-1cpu-ms.min	 23000 govm.boot-1cpu-ms.max	 25000 qemu.boot-1cpu-ms	 50000 gokvm.boot-1cpu-ms
BenchmarkFail-2                      	       1	 1000 ns/op	 0 govm.failed-boots-2cpu	 1 qemu.failed-boots-2cpu
BenchmarkBlk-2                       	       1	 1000 ns/op	 95 govm.blk-seq-read-MBps	 100 host.blk-seq-read-MBps	 80 qemu.blk-seq-read-MBps
BenchmarkNet-2                       	       1	 1000 ns/op	 50 govm.net-guest-to-host-Mbps	 100 qemu.net-guest-to-host-Mbps	 1.1 paired-qemu.net-guest-to-host-Mbps	 0.4 paired-qemu.net-guest-to-host-Mbps.min	 1.6 paired-qemu.net-guest-to-host-Mbps.max
BenchmarkKVMUnitBenches-2            	       1	75572257432 ns/op
BENCH-NOTE VirtioNet: skipped: every attempt was spoiled by the emulator
PASS
`

func TestBuild(t *testing.T) {
	s, err := parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	tab := build(s, testGoals(t))
	rows := map[string]Row{}
	for _, r := range tab.Rows {
		rows[r.Measure] = r
	}
	for _, tc := range []struct {
		measure, peer string
		want          Stat
	}{
		{"ExitRoundTrip/pio ns/op", "raw", Stat{7800, 7700, 7900, 2}},
		{"ExitRoundTrip/pio ns/op", "govm", Stat{8300, 8100, 8500, 2}},
		{"boot-1cpu-ms", "govm", Stat{20000, 19000, 23000, 1}},
		{"boot-1cpu-ms", "gokvm", Stat{50000, 50000, 50000, 1}},
		{"first-KVM_RUN-ms", "govm", Stat{9.5, 9.5, 9.5, 1}},
		{"blk-seq-read-MBps", "host", Stat{100, 100, 100, 1}},
	} {
		if got := rows[tc.measure].Cells[tc.peer]; got != tc.want {
			t.Errorf("%s %s = %+v, want %+v", tc.measure, tc.peer, got, tc.want)
		}
	}
	for _, tc := range []struct {
		measure, goal string
		met           bool
	}{
		{"ExitRoundTrip/pio ns/op", "≤1.10× raw", true}, // 8300/7800 = 1.064
		{"boot-1cpu-ms", "≤0.80× qemu", true},           // 0.8
		{"boot-1cpu-ms", "≤0.50× gokvm", true},          // 0.4
		{"blk-seq-read-MBps", "≥0.90× host", true},      // 0.95
		{"blk-seq-read-MBps", "≥1.00× qemu", true},
		// The paired ratio (1.1) decides, not the medians' (0.5).
		{"net-guest-to-host-Mbps", "≥1.00× qemu", true},
		{"first-KVM_RUN-ms", "≤5", false},
		{"overhead-MiB", "≤5", false},
	} {
		found := false
		for _, g := range rows[tc.measure].Goals {
			if g.Goal == tc.goal {
				found = true
				if g.Met != tc.met {
					t.Errorf("%s goal %s met=%v, want %v", tc.measure, tc.goal, g.Met, tc.met)
				}
			}
		}
		if !found {
			t.Errorf("%s: no goal %s in %+v", tc.measure, tc.goal, rows[tc.measure].Goals)
		}
	}
	if len(tab.HotPaths) != 1 || tab.HotPaths[0].Name != "VirtqueuePop" || tab.HotPaths[0].NsPerOp != 220 || tab.HotPaths[0].Runs != 2 {
		t.Errorf("hot paths %+v", tab.HotPaths)
	}
	if got, want := rows["net-guest-to-host-Mbps"].Paired["qemu"], (Stat{1.1, 0.4, 1.6, 1}); got != want {
		t.Errorf("paired ratio %+v, want %+v", got, want)
	}
	if r := rows["failed-boots-2cpu"]; len(r.Ratios) != 0 || r.Cells["qemu"].Median != 1 {
		t.Errorf("failed boots: ratios %v (want none), cells %v", r.Ratios, r.Cells)
	}
	if _, ok := rows["boot-1cpu-ms"].Paired["qemu"]; ok {
		t.Error("boot has a paired ratio it was never given")
	}
	var out bytes.Buffer
	write(&out, tab)
	if len(tab.Notes) != 1 || tab.Notes[0] != "VirtioNet: skipped: every attempt was spoiled by the emulator" {
		t.Errorf("notes %q", tab.Notes)
	}
	for _, want := range []string{"boot-1cpu-ms", "20000 [19000..23000]", "govm/gokvm", "0.40", "1.10 [0.40..1.60] paired", "MISSED", "note: VirtioNet: skipped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseRejectsGarbledFigures(t *testing.T) {
	if _, err := parse(strings.NewReader("BenchmarkX-2  10  abc govm.boot-ms\n")); err == nil {
		t.Error("accepted a non-number")
	}
}

// TestWriteSparse: a run cut short (no figures, or govm's alone) prints
// what it has rather than failing.
func TestWriteSparse(t *testing.T) {
	for _, in := range []string{
		"BenchmarkVirtioNet\n    harness.go:302: nested attempt 1 spoiled\n",
		"BenchmarkVirtioNet-2  1  100 govm.net-guest-to-host-Mbps\n",
	} {
		s, err := parse(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		write(&out, build(s, testGoals(t)))
		if !strings.Contains(out.String(), "measure") {
			t.Errorf("no header for %q:\n%s", in, out.String())
		}
	}
}

// testGoals are the built-in goals.
func testGoals(t *testing.T) goals {
	t.Helper()
	g, err := loadGoals(defaultGoals)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestLoadGoals(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"built-in", string(defaultGoals), true},
		{"empty", `{}`, true},
		{"unknown peer", `{"ratio":[{"prefix":"boot-","peer":"vmware","bound":1}]}`, false},
		{"govm against itself", `{"ratio":[{"prefix":"boot-","peer":"govm","bound":1}]}`, false},
		{"zero bound", `{"ratio":[{"prefix":"boot-","peer":"qemu","bound":0}]}`, false},
		{"unknown field", `{"ratios":[]}`, false},
		{"not JSON", `boot- qemu 0.8`, false},
	}
	for _, tt := range tests {
		if _, err := loadGoals([]byte(tt.in)); (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}
