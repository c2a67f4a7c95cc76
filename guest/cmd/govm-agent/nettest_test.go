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
