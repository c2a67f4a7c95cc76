package boot

import "github.com/govm/govm/mem"

// E820Type is an e820 entry type (ACPI 6.5, table 15.1 "Address Range Types").
type E820Type uint32

const (
	E820RAM      E820Type = 1
	E820Reserved E820Type = 2
	E820ACPI     E820Type = 3
)

// e820EntrySize is sizeof(struct boot_e820_entry).
const e820EntrySize = 20

// E820Entry is one address range of the map handed to the kernel.
type E820Entry struct {
	Addr uint64
	Size uint64
	Type E820Type
}

// E820Map describes guest RAM to the kernel. RAM starting at 0 is split at
// the EBDA: [0, EBDAStart) is usable, [EBDAStart, 1 MiB) reserved (the BIOS
// area, which holds govm's ACPI tables); everything else is RAM as mapped.
// The 32-bit PCI hole is absent from the map, so the kernel may assign it to
// devices.
func E820Map(m *mem.Memory) []E820Entry {
	var out []E820Entry
	for _, r := range m.Regions() {
		if r.Base == 0 && r.End() > HighMemStart {
			out = append(out,
				E820Entry{Addr: 0, Size: EBDAStart, Type: E820RAM},
				E820Entry{Addr: EBDAStart, Size: HighMemStart - EBDAStart, Type: E820Reserved},
				E820Entry{Addr: HighMemStart, Size: r.End() - HighMemStart, Type: E820RAM},
			)
			continue
		}
		out = append(out, E820Entry{Addr: r.Base, Size: uint64(len(r.Data)), Type: E820RAM})
	}
	return out
}
