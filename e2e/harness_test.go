package e2e

import (
	"slices"
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
		{"two vCPUs: the holder may be the other", head + stuck + "  vCPU 1: rip 0x2 if=1 runnable; lapic on irr - isr -; code 90 <90>\n", false},
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
