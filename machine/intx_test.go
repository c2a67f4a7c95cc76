package machine

import (
	"testing"

	"github.com/govm/govm/pci"
)

// TestINTxWiredOR: a shared line goes high with its first asserter and
// low with its last; repeated levels from one device change nothing.
func TestINTxWiredOR(t *testing.T) {
	type drive struct {
		gsi  uint32
		high bool
	}
	var driven []drive
	l := &intxLines{
		drive: func(gsi uint32, high bool) error { driven = append(driven, drive{gsi, high}); return nil },
		count: map[uint32]int{}, mine: map[intxKey]bool{},
	}
	a, b := "disk", "nic"
	steps := []struct {
		dev  string
		gsi  uint32
		high bool
		want []drive // KVM_IRQ_LINE calls this step makes
	}{
		{a, 17, true, []drive{{17, true}}},
		{a, 17, true, nil},  // already high
		{b, 17, true, nil},  // shared: already high
		{a, 17, false, nil}, // b still asserts
		{b, 17, false, []drive{{17, false}}},
		{b, 17, false, nil},
		{b, 18, true, []drive{{18, true}}},
		{a, 17, true, []drive{{17, true}}},
	}
	for i, s := range steps {
		driven = nil
		l.set(s.dev, s.gsi, s.high)
		if len(driven) != len(s.want) || (len(s.want) == 1 && driven[0] != s.want[0]) {
			t.Fatalf("step %d (%s sets %d to %v): drove %v, want %v", i, s.dev, s.gsi, s.high, driven, s.want)
		}
	}
}

func TestSlotGSI(t *testing.T) {
	for _, c := range []struct {
		slot int
		gsi  uint32
	}{{1, 16}, {2, 17}, {8, 23}, {9, 16}, {31, 22}} {
		if g := slotGSI(c.slot); g != c.gsi {
			t.Errorf("slot %d: GSI %d, want %d", c.slot, g, c.gsi)
		}
	}
	if r := pciRoutes(); len(r) != pci.Slots-1 || r[0].Slot != 1 || r[0].GSI != 16 {
		t.Errorf("routes %v", r)
	}
}
