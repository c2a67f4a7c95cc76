package kvm

import (
	"encoding/binary"
	"testing"
)

// TestFlexLayout: a header then its entries, at the offsets <linux/kvm.h>
// gives (struct kvm_msrs: nmsrs, pad, then 16-byte kvm_msr_entry), and
// back again.
func TestFlexLayout(t *testing.T) {
	entries := []MSREntry{{Index: 0x10, Data: 7}, {Index: 0x1a0, Data: 1}}
	hdr := msrsHeader{NMSRs: 2}
	for _, n := range []int{2, 5} {
		buf := packFlex(&hdr, entries, n)
		if want := 8 + 16*n; len(buf) != want {
			t.Fatalf("room for %d: %d bytes, want %d", n, len(buf), want)
		}
		le := binary.LittleEndian
		if le.Uint32(buf[0:]) != 2 || le.Uint32(buf[8:]) != 0x10 || le.Uint64(buf[16:]) != 7 || le.Uint32(buf[24:]) != 0x1a0 {
			t.Fatalf("layout % x", buf)
		}
		var back msrsHeader
		got := unpackFlex[msrsHeader, MSREntry](buf, &back, 2)
		if back != hdr || len(got) != 2 || got[0] != entries[0] || got[1] != entries[1] {
			t.Fatalf("unpacked %+v %+v", back, got)
		}
	}
}
