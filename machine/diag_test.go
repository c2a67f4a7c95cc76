package machine

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/govm/govm/kvm"
)

func TestDecodeLAPIC(t *testing.T) {
	var l kvm.LAPICState
	put := func(off int, v uint32) { binary.LittleEndian.PutUint32(l.Regs[off:], v) }
	put(lapicSVR, lapicSVREnable|0xff)
	put(lapicTPR, 0x20)
	put(lapicIRR+1*lapicVectorReg, 1<<(0x22-32)) // vector 0x22
	put(lapicIRR+7*lapicVectorReg, 1<<31)        // vector 0xff
	put(lapicISR+1*lapicVectorReg, 1<<(0x30-32)) // vector 0x30
	put(lapicLVTTimer, lapicTimerDeadline|0xec)
	a := DecodeLAPIC(&l)
	if !a.Enabled || a.TPR != 0x20 {
		t.Errorf("enabled %v tpr %#x, want true 0x20", a.Enabled, a.TPR)
	}
	if !slices.Equal(a.IRR, []int{0xff, 0x22}) || !slices.Equal(a.ISR, []int{0x30}) {
		t.Errorf("irr %v isr %v, want [255 34] [48]", a.IRR, a.ISR)
	}

	tests := []struct {
		lvt, init, cur uint32
		tsc, deadline  uint64
		want           string
	}{
		{lapicTimerDeadline | 0xec, 0, 0, 1000, 0, "tsc-deadline vec 0xec, disarmed"},
		{lapicTimerDeadline | 0xec, 0, 0, 1000, 1500, "tsc-deadline vec 0xec, fires in 500 cycles"},
		{lapicTimerDeadline | 0xec, 0, 0, 1000, 900, "tsc-deadline vec 0xec, expired 100 cycles ago"},
		{lapicTimerPeriodic | lapicLVTMasked | 0xef, 100, 40, 0, 0, "periodic vec 0xef masked, count 40/100"},
		{0xef, 100, 0, 0, 0, "one-shot vec 0xef, count 0/100"},
	}
	for _, tt := range tests {
		a := LAPIC{TimerLVT: tt.lvt, TimerInit: tt.init, TimerCur: tt.cur}
		if got := a.timer(tt.tsc, tt.deadline); got != tt.want {
			t.Errorf("timer(%#x) = %q, want %q", tt.lvt, got, tt.want)
		}
	}
}
