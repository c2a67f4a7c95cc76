package boot

import (
	"encoding/binary"
	"fmt"

	"github.com/govm/govm/mem"
)

// Segment is a segment register's hidden state, as loaded from a
// descriptor.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  bool
	DPL      uint8
	DB       bool
	S        bool
	L        bool
	G        bool
	AVL      bool
}

// CPUState is the register state the boot vCPU starts in: 64-bit long
// mode, paging on with the identity map, interrupts off, RSI pointing at the
// zero page (boot.rst, "64-bit Boot Protocol").
type CPUState struct {
	RIP, RSP, RBP, RSI, RFLAGS uint64
	CR0, CR3, CR4, EFER        uint64
	GDTBase                    uint64
	GDTLimit                   uint16
	IDTBase                    uint64
	IDTLimit                   uint16
	CS, DS, TR                 Segment
}

// Control register and EFER bits (Intel SDM vol. 3, 2.5 and 2.2.1).
const (
	cr0PE   = 1 << 0
	cr0ET   = 1 << 4
	cr0NE   = 1 << 5
	cr0PG   = 1 << 31
	cr4PAE  = 1 << 5
	eferLME = 1 << 8
	eferLMA = 1 << 10

	rflagsReserved = 1 << 1 // bit 1 is always set

	// Page table entry bits (SDM vol. 3, 4.5).
	ptePresent = 1 << 0
	pteWrite   = 1 << 1
	ptePS      = 1 << 7
)

// GDT selectors the 64-bit boot protocol requires: __BOOT_CS = 0x10 and
// __BOOT_DS = 0x18. Entry 4 is a TSS, which VMX needs in TR.
const (
	gdtNull     = 0
	gdtCode     = 2
	gdtData     = 3
	gdtTSS      = 4
	gdtEntries  = 5
	SelectorCS  = gdtCode << 3
	SelectorDS  = gdtData << 3
	SelectorTSS = gdtTSS << 3
)

// Descriptor access/flag words: access byte in bits 0-7, the G/DB/L/AVL
// nibble in bits 12-15 (SDM vol. 3, 3.4.5).
const (
	descCode64 = 0xa09b // G, L, present, DPL 0, code execute/read accessed
	descData   = 0xc093 // G, D/B, present, DPL 0, data read/write accessed
	descTSS    = 0x808b // G, present, 64-bit busy TSS
)

// gdtEntry encodes a segment descriptor.
func gdtEntry(flags uint16, base, limit uint32) uint64 {
	return uint64(base&0xff000000)<<32 | uint64(flags&0xf0ff)<<40 |
		uint64(limit&0x000f0000)<<32 | uint64(base&0x00ffffff)<<16 | uint64(limit&0x0000ffff)
}

// segmentFromDesc is the hidden state a descriptor loads.
func segmentFromDesc(sel uint16, flags uint16, base, limit uint32) Segment {
	s := Segment{
		Base:     uint64(base),
		Selector: sel,
		Type:     uint8(flags & 0xf),
		S:        flags>>4&1 == 1,
		DPL:      uint8(flags >> 5 & 3),
		Present:  flags>>7&1 == 1,
		AVL:      flags>>12&1 == 1,
		L:        flags>>13&1 == 1,
		DB:       flags>>14&1 == 1,
		G:        flags>>15&1 == 1,
	}
	s.Limit = limit
	if s.G {
		s.Limit = limit<<12 | 0xfff
	}
	return s
}

// gdtTable is the boot GDT.
func gdtTable() [gdtEntries]uint64 {
	return [gdtEntries]uint64{
		gdtNull: 0,
		gdtCode: gdtEntry(descCode64, 0, 0xfffff),
		gdtData: gdtEntry(descData, 0, 0xfffff),
		gdtTSS:  gdtEntry(descTSS, 0, 0xfffff),
	}
}

func writeGDT(m *mem.Memory) error {
	g := gdtTable()
	for i, e := range g {
		if err := m.PutUint64(GDTAddr+uint64(i)*8, e); err != nil {
			return fmt.Errorf("GDT: %w", err)
		}
	}
	if err := m.PutUint64(IDTAddr, 0); err != nil {
		return fmt.Errorf("IDT: %w", err)
	}
	return nil
}

// writePageTables identity-maps the first 4 GiB with 2 MiB pages, which
// covers the kernel, zero page, command line and initrd wherever they are
// placed below 4 GiB.
func writePageTables(m *mem.Memory) error {
	tables, err := m.Slice(PML4Addr, PDAddr+identityMapPDs*pageSize-PML4Addr)
	if err != nil {
		return fmt.Errorf("page tables: %w", err)
	}
	clear(tables)
	le := binary.LittleEndian
	le.PutUint64(tables[0:], PDPTAddr|ptePresent|pteWrite)
	pdpt := tables[PDPTAddr-PML4Addr:]
	for i := 0; i < identityMapPDs; i++ {
		pd := uint64(PDAddr + i*pageSize)
		le.PutUint64(pdpt[i*8:], pd|ptePresent|pteWrite)
		pdTable := tables[pd-PML4Addr:]
		for j := 0; j < ptEntries; j++ {
			phys := uint64(i*ptEntries+j) * pageSize2M
			le.PutUint64(pdTable[j*8:], phys|ptePresent|pteWrite|ptePS)
		}
	}
	return nil
}

func initialState(entry uint64) CPUState {
	return CPUState{
		RIP:      entry,
		RSP:      StackTop,
		RBP:      StackTop,
		RSI:      ZeroPageAddr,
		RFLAGS:   rflagsReserved,
		CR0:      cr0PE | cr0ET | cr0NE | cr0PG,
		CR3:      PML4Addr,
		CR4:      cr4PAE,
		EFER:     eferLME | eferLMA,
		GDTBase:  GDTAddr,
		GDTLimit: gdtEntries*8 - 1,
		IDTBase:  IDTAddr,
		IDTLimit: 7,
		CS:       segmentFromDesc(SelectorCS, descCode64, 0, 0xfffff),
		DS:       segmentFromDesc(SelectorDS, descData, 0, 0xfffff),
		TR:       segmentFromDesc(SelectorTSS, descTSS, 0, 0xfffff),
	}
}
