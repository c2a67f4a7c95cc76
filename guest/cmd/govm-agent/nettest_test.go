package main

import (
	"maps"
	"testing"
)

func TestParseInterrupts(t *testing.T) {
	const text = `           CPU0       CPU1
  0:         37          0   IO-APIC   2-edge      timer
 24:        100         20   PCI-MSIX-0000:00:01.0   0-edge      virtio0-config
 25:       5000        700   PCI-MSIX-0000:00:01.0   1-edge      virtio0-input.0
 26:          3          4   PCI-MSIX-0000:00:01.0   2-edge      virtio0-output.0
NMI:          0          0   Non-maskable interrupts
LOC:      12000      11000   Local timer interrupts
RES:          5          6   Rescheduling interrupts
ERR:          0
`
	want := map[string]uint64{
		"timer": 37, "virtio0-config": 120, "virtio0-input.0": 5700, "virtio0-output.0": 7,
		"NMI": 0, "LOC": 23000, "RES": 11, "ERR": 0,
	}
	if got := parseInterrupts(text); !maps.Equal(got, want) {
		t.Errorf("parsed %v\nwant %v", got, want)
	}
	if got := parseInterrupts(""); len(got) != 0 {
		t.Errorf("empty file gave %v", got)
	}
}

func TestCPUSplit(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest, in ticks.
	was := []uint64{100, 10, 50, 1000, 5, 1, 2, 0, 7}
	now := []uint64{103, 11, 52, 1010, 6, 2, 5, 0, 9}
	var s cpuSplit
	s.add(was, now)
	s.add(was, now) // a second CPU with the same growth
	const want = "user=80 system=40 softirq=60 irq=20 guest=40 idle=220"
	if got := s.String(); got != want {
		t.Errorf("%s, want %s", got, want)
	}
}
