package machine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/govm/govm/mem"
)

// Paging-structure bits (Intel SDM Vol. 3A, 4.5 "4-Level Paging and
// 5-Level Paging"; AMD APM Vol. 2, 5.3).
const (
	cr0PG      = 1 << 31
	cr4LA57    = 1 << 12
	eferLMA    = 1 << 10
	ptePresent = 1 << 0
	ptePS      = 1 << 7                // page size: a 1 GiB or 2 MiB leaf
	pteAddr    = 0x000f_ffff_ffff_f000 // bits 51:12
)

var errUnmapped = errors.New("not mapped")

// translate walks the guest's 4- or 5-level page tables for the linear
// address va and returns its guest-physical address. Unpaged mode maps
// one to one; 32-bit paging modes are not walked (govm's guests run in
// long mode). Every table read goes through guest memory's bounds checks.
func translate(m *mem.Memory, cr0, cr3, cr4, efer, va uint64) (uint64, error) {
	if cr0&cr0PG == 0 {
		return va, nil
	}
	if efer&eferLMA == 0 {
		return 0, errors.New("32-bit paging is not walked")
	}
	levels := 4
	if cr4&cr4LA57 != 0 {
		levels = 5
	}
	table := cr3 & pteAddr
	for level := levels; level >= 1; level-- {
		shift := 12 + 9*uint(level-1)
		e, err := m.Uint64(table + (va>>shift&0x1ff)*8)
		if err != nil {
			return 0, fmt.Errorf("level %d table at %#x: %w", level, table, err)
		}
		if e&ptePresent == 0 {
			return 0, errUnmapped
		}
		if level <= 3 && level >= 2 && e&ptePS != 0 {
			return e&pteAddr&^(1<<shift-1) | va&(1<<shift-1), nil
		}
		table = e & pteAddr
	}
	return table | va&0xfff, nil
}

// codeBytes shows the instruction bytes around rip as Linux's oops "Code:"
// line does: before bytes, then the byte at rip in <>, then after.
func codeBytes(m *mem.Memory, cr0, cr3, cr4, efer, rip uint64, before, after int) string {
	var b strings.Builder
	for i := -before; i < after; i++ {
		va := rip + uint64(i)
		var v [1]byte
		pa, err := translate(m, cr0, cr3, cr4, efer, va)
		if err == nil {
			err = m.ReadAt(v[:], pa)
		}
		if i > -before {
			b.WriteByte(' ')
		}
		switch {
		case err != nil:
			b.WriteString("??")
		case i == 0:
			fmt.Fprintf(&b, "<%02x>", v[0])
		default:
			fmt.Fprintf(&b, "%02x", v[0])
		}
	}
	return b.String()
}
