package e2e

import (
	"slices"
	"strings"
	"testing"
)

func TestMaskedIRQDeadlock(t *testing.T) {
	const head = "govm: timeout after 1m30s (exit 35); the guest when stopped:\n"
	// As measured: the single vCPU in the qspinlock slowpath's wait loop,
	// interrupts off, vector 0x21 in service.
	const stuck = "  vCPU 0: rip 0xffffffff92618749 if=0 runnable; lapic on tpr 0x10 ppr 0x20 irr 0xec isr 0x21; timer one-shot vec 0xec, count 0/224429; code 00 00 74 08 f3 90 <8b> 03 84 c0 75 f8 eb 0b\n"
	tests := []struct {
		name string
		out  string
		want bool
	}{
		{"spinning in a handler", head + stuck, true},
		{"no timeout", stuck, false},
		{"idle guest", head + "  vCPU 0: rip 0xffffffff81018749 if=1 halted; lapic on tpr 0x0 ppr 0x0 irr - isr -; timer tsc-deadline vec 0xec, fires in 100 cycles; code 00 00 fb f4 <c3> cc\n", false},
		{"no interrupt in service", head + "  vCPU 0: rip 0x1 if=0 runnable; lapic on tpr 0x0 ppr 0x0 irr - isr -; timer x; code f3 90 <8b> 03\n", false},
		{"not a spin-wait", head + "  vCPU 0: rip 0x1 if=0 runnable; lapic on tpr 0x0 ppr 0x20 irr - isr 0x21; timer x; code 90 90 <8b> 03\n", false},
		{"two vCPUs, the other with interrupts on: it holds no such lock", head + stuck + "  vCPU 1: rip 0x2 if=1 runnable; lapic on irr - isr -; code 90 <90>\n", true},
		{"two vCPUs, the other with interrupts off: it may hold the lock", head + stuck + "  vCPU 1: rip 0x2 if=0 runnable; lapic on irr - isr -; code 90 <90>\n", false},
		{"both stuck so: each may hold the other's lock", head + stuck + stuck, false},
	}
	for _, tt := range tests {
		if got := maskedIRQDeadlock(tt.out); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSplitRounds(t *testing.T) {
	rounds := []map[string]float64{
		{"govm.net-Mbps": 50, "qemu.net-Mbps": 100, "host.blk-MBps": 10},
		{"govm.net-Mbps": 90, "qemu.net-Mbps": 60},
		{"govm.net-Mbps": 70},                     // QEMU failed this round: no pair
		{"govm.net-Mbps": 80, "qemu.net-Mbps": 0}, // no figure to divide by
	}
	figs, pairs := splitRounds(rounds)
	if got := figs["govm.net-Mbps"]; !slices.Equal(got, []float64{50, 90, 70, 80}) {
		t.Errorf("govm figures %v", got)
	}
	if got := pairs["paired-qemu.net-Mbps"]; !slices.Equal(got, []float64{0.5, 1.5}) {
		t.Errorf("paired ratios %v, want [0.5 1.5]", got)
	}
	if _, ok := pairs["paired-host.blk-MBps"]; ok {
		t.Error("a peer's measure without govm's got a pair")
	}
	if len(pairs) != 1 {
		t.Errorf("pairs %v", pairs)
	}
}

// TestVMMCPU: the VMM's thread groups summed, its vCPU threads (govm's and
// QEMU's names) left out of the I/O figure, a port reported again counted
// from its last report, the CPUs' sampled guest time ignored.
func TestVMMCPU(t *testing.T) {
	out := strings.Join([]string{
		"GOVM-HOST-CPU 5001 wall_ms=2400 vmm=govm pid=109",
		"GOVM-HOST-CPU 5001 vmm govm threads=8 run_ms=226.7 wait_ms=1242.9 slices=1856",
		"GOVM-HOST-CPU 5001 vmm govm-net0 threads=1 run_ms=324.2 wait_ms=16.7 slices=402",
		"GOVM-HOST-CPU 5001 vmm govm-vcpu0 threads=1 run_ms=1318.1 wait_ms=1042.0 slices=382",
		"GOVM-HOST-CPU 5001 vmm govm-vcpu1 threads=1 run_ms=10 wait_ms=1042.0 slices=382",
		"GOVM-HOST-CPU 5001 peer govm-host threads=4 run_ms=486.5 wait_ms=537.9 slices=1465",
		"GOVM-HOST-CPU 5001 cpu0 user=1620 system=740 softirq=0 irq=0 guest=1210 idle=0",
		"GOVM-HOST-CPU 5001 cpu1 user=0 system=0 softirq=0 irq=0 guest=10 idle=2350",
		"GOVM-HOST-CPU 5010 wall_ms=883 vmm=qemu-system-x86 pid=143", // spoiled, run again
		"GOVM-HOST-CPU 5010 vmm CPU_0/KVM threads=1 run_ms=900 wait_ms=1 slices=1",
		"GOVM-HOST-CPU 5010 cpu0 user=1 system=1 softirq=0 irq=0 guest=500 idle=0",
		"GOVM-HOST-CPU 5010 wall_ms=820 vmm=qemu-system-x86 pid=150",
		"GOVM-HOST-CPU 5010 vmm CPU_0/KVM threads=1 run_ms=565.5 wait_ms=1 slices=1",
		"GOVM-HOST-CPU 5010 vmm qemu-system-x86 threads=2 run_ms=135 wait_ms=1 slices=1",
		"GOVM-HOST-CPU 5010 cpu0 user=1 system=1 softirq=0 irq=0 guest=530 idle=0",
		"GOVM-HOST-KVM 5010 exits=3409",
	}, "\r\n")
	got := vmmCPU(out)
	want := map[string]transferCPU{
		"5001": {Process: 226.7 + 324.2 + 1318.1 + 10, IO: 226.7 + 324.2},
		"5010": {Process: 565.5 + 135, IO: 135},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	near := func(a, b float64) bool { return a > b-0.01 && a < b+0.01 }
	for port, w := range want {
		if g := got[port]; !near(g.Process, w.Process) || !near(g.IO, w.IO) {
			t.Errorf("port %s: %+v, want %+v", port, g, w)
		}
	}
}

func TestFisherGreater(t *testing.T) {
	for _, c := range []struct {
		a, b, c, d int
		lo, hi     float64
	}{
		{0, 50, 0, 50, 1, 1},         // no failures anywhere
		{5, 45, 5, 45, 0.5, 0.7},     // equal rates: no evidence
		{10, 40, 1, 49, 0.002, 0.01}, // clearly worse
		{1, 49, 10, 40, 0.99, 1},     // clearly better
		{3, 0, 0, 3, 0.049, 0.051},   // all of one group failed: 1/20
	} {
		if p := fisherGreater(c.a, c.b, c.c, c.d); p < c.lo || p > c.hi {
			t.Errorf("fisherGreater(%d, %d, %d, %d) = %.4f, want in [%g, %g]", c.a, c.b, c.c, c.d, p, c.lo, c.hi)
		}
	}
}
