// Package machine owns a running VM: it sizes and maps guest RAM around the
// 32-bit PCI hole, creates the VM with its in-kernel interrupt controllers
// and timer, wires the legacy devices onto the port and MMIO buses, loads
// the kernel through package boot, runs one goroutine per vCPU (each locked
// to its OS thread) and turns the first stop request (poweroff, reset,
// crash, cancellation) into a Result.
package machine

import (
	"errors"
	"fmt"

	"github.com/govm/govm/mem"
)

// Guest physical layout outside RAM.
const (
	// PCIHoleStart is where low RAM ends when the guest has more than
	// 3 GiB; [PCIHoleStart, 4 GiB) is left for PCI MMIO, the I/O APIC and
	// the local APICs, and RAM continues at HighRAMStart.
	PCIHoleStart = 0xc000_0000
	HighRAMStart = 1 << 32

	// IOAPICAddr and LAPICAddr are the architectural defaults (Intel
	// 82093AA data sheet; SDM vol. 3, 10.4.1).
	IOAPICAddr = 0xfec0_0000
	LAPICAddr  = 0xfee0_0000

	// TSSAddr and IdentityMapAddr are three and one pages KVM on Intel
	// needs for real-mode emulation, just below the 4 GiB boundary where
	// BIOS flash would be, outside RAM and the PCI window.
	TSSAddr         = 0xfffb_d000
	IdentityMapAddr = 0xfffb_c000

	// ACPIAddr is where the RSDP and the other ACPI tables go: the BIOS
	// area the kernel scans for "RSD PTR " (ACPI 6.5, 5.2.5.1).
	ACPIAddr = 0xe_0000
	ACPIEnd  = 0x10_0000

	// ACPIPMPort is the I/O port of the ACPI sleep control, sleep status
	// and reset registers (the FADT points at it).
	ACPIPMPort = 0x600
)

// Memory size limits.
const (
	// MinMemory is the least RAM govm boots: room below 1 MiB for the boot
	// structures and a 16 MiB kernel load address plus a decompressed
	// kernel.
	MinMemory = 64 << 20
	// MemAlign is the granularity of --mem.
	MemAlign = 2 << 20
)

// ErrMemSize is returned for a memory size govm cannot lay out.
var ErrMemSize = errors.New("bad memory size")

// RAMRanges splits size bytes of RAM around the PCI hole.
func RAMRanges(size uint64) ([]mem.Range, error) {
	if size < MinMemory {
		return nil, fmt.Errorf("%w: %d MiB is below the %d MiB minimum", ErrMemSize, size>>20, MinMemory>>20)
	}
	if size%MemAlign != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not a multiple of %d MiB", ErrMemSize, size, MemAlign>>20)
	}
	if size > 1<<46 {
		return nil, fmt.Errorf("%w: %d GiB is more than 64 TiB", ErrMemSize, size>>30)
	}
	low := min(size, PCIHoleStart)
	r := []mem.Range{{Base: 0, Size: low}}
	if size > low {
		r = append(r, mem.Range{Base: HighRAMStart, Size: size - low})
	}
	return r, nil
}
