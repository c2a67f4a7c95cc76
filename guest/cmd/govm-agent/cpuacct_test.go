package main

import "testing"

func TestKVMGrowth(t *testing.T) {
	tests := []struct {
		name          string
		before, after map[string]uint64
		want          string
	}{
		{"nothing read", nil, map[string]uint64{}, ""},
		{"grown, sorted", map[string]uint64{"io_exits": 10, "exits": 100, "halt_exits": 5},
			map[string]uint64{"io_exits": 15, "exits": 160, "halt_exits": 5}, " exits=60 io_exits=5"},
		{"born since", map[string]uint64{}, map[string]uint64{"irq_injections": 3}, " irq_injections=3"},
		{"shrunk (a VM replaced) is not growth", map[string]uint64{"exits": 100}, map[string]uint64{"exits": 40}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kvmGrowth(tt.before, tt.after); got != tt.want {
				t.Fatalf("kvmGrowth = %q, want %q", got, tt.want)
			}
		})
	}
}
