package machine

import (
	"encoding/binary"
	"testing"

	"github.com/govm/govm/mem"
)

func TestTranslate(t *testing.T) {
	raw := make([]byte, 8<<20)
	m, err := mem.New(mem.Region{Base: 0, Data: raw})
	if err != nil {
		t.Fatal(err)
	}
	put := func(addr, v uint64) { binary.LittleEndian.PutUint64(raw[addr:], v) }
	const (
		pml5, pml4, pdpt, pd, pt = 0x1000, 0x2000, 0x3000, 0x4000, 0x5000
		va4k                     = 0xffff_ffff_8100_3123 // 4 KiB page
		va2m                     = 0xffff_ffff_8140_0456 // 2 MiB page
		va1g                     = 0xffff_ff00_4000_0789 // 1 GiB page
	)
	idx := func(va uint64, level uint) uint64 { return va >> (12 + 9*(level-1)) & 0x1ff }
	p := uint64(ptePresent)
	put(pml5+idx(va4k, 5)*8, pml4|p)
	put(pml4+idx(va4k, 4)*8, pdpt|p)
	put(pdpt+idx(va4k, 3)*8, pd|p)
	put(pd+idx(va4k, 2)*8, pt|p)
	put(pt+idx(va4k, 1)*8, 0x7000|p)
	put(pd+idx(va2m, 2)*8, 0x600000|p|ptePS)
	put(pml4+idx(va1g, 4)*8, 0x6000|p) // a second PDPT
	put(0x6000+idx(va1g, 3)*8, 0x4000_0000|p|ptePS)

	const pg, lma = cr0PG, eferLMA
	tests := []struct {
		name                    string
		cr0, cr3, cr4, efer, va uint64
		want                    uint64
		wantErr                 bool
	}{
		{"unpaged", 0, 0, 0, 0, 0x1234, 0x1234, false},
		{"4-level 4 KiB", pg, pml4, 0, lma, va4k, 0x7123, false},
		{"5-level 4 KiB", pg, pml5, cr4LA57, lma, va4k, 0x7123, false},
		{"2 MiB page", pg, pml4, 0, lma, va2m, 0x600456, false},
		{"1 GiB page", pg, pml4, 0, lma, va1g, 0x4000_0789, false},
		{"not present", pg, pml4, 0, lma, 0xffff_8000_0000_0000, 0, true},
		{"table outside RAM", pg, 0x7fff_f000, 0, lma, va4k, 0, true},
		{"32-bit paging", pg, pml4, 0, 0, va4k, 0, true},
	}
	for _, tt := range tests {
		got, err := translate(m, tt.cr0, tt.cr3, tt.cr4, tt.efer, tt.va)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: translate(%#x) = %#x, %v; want %#x, error %v", tt.name, tt.va, got, err, tt.want, tt.wantErr)
		}
	}
	copy(raw[0x7120:], []byte{0xf3, 0x90, 0x8b, 0x03, 0x84, 0xc0})
	if got, want := codeBytes(m, pg, pml4, 0, lma, va4k-1, 2, 4), "f3 90 <8b> 03 84 c0"; got != want {
		t.Errorf("codeBytes = %q, want %q", got, want)
	}
}
