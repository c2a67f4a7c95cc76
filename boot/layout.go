// Package boot owns loading a Linux kernel into guest memory by the x86
// boot protocol (Documentation/arch/x86/boot.rst): parsing and validating a
// bzImage setup header or an ELF vmlinux, placing the kernel, initrd and
// command line, building the zero page (struct boot_params) with its e820
// map, and building the identity-mapped page tables and GDT for the 64-bit
// entry. It writes guest memory and returns the initial CPU state; it never
// touches a vCPU.
package boot

// Guest physical layout of what the loader places below 1 MiB, and the
// kernel's default load address. Every fixed address govm's boot path uses
// is one of these constants.
const (
	// GDTAddr holds the boot GDT; IDTAddr a zero-limit IDT.
	GDTAddr = 0x500
	IDTAddr = 0x520

	// ZeroPageAddr holds struct boot_params (4 KiB), passed in RSI.
	ZeroPageAddr = 0x7000

	// StackTop is the initial RSP; the 64-bit entry does not need a
	// stack, but a valid one makes an early fault debuggable.
	StackTop = 0x8ff0

	// Identity-mapped page tables for the first 4 GiB with 2 MiB pages:
	// one PML4, one PDPT and four page directories.
	PML4Addr = 0x9000
	PDPTAddr = 0xa000
	PDAddr   = 0xb000 // four consecutive pages, 0xb000-0xefff

	// CmdlineAddr is where the kernel command line is copied; CmdlineMax
	// bounds it (the kernel's own limit, cmdline_size, is checked too).
	CmdlineAddr = 0x20000
	CmdlineMax  = 0x10000

	// EBDAStart is the start of the Extended BIOS Data Area: RAM below it
	// is usable, [EBDAStart, HighMemStart) is reserved in the e820 map
	// (legacy VGA window, option ROMs and BIOS area, where govm puts the
	// ACPI tables).
	EBDAStart = 0x9fc00

	// HighMemStart is the 1 MiB boundary.
	HighMemStart = 0x100000

	// DefaultKernelAddr is LOAD_PHYSICAL_ADDR, the 16 MiB load address of
	// x86_64 kernels, used when the header gives no pref_address.
	DefaultKernelAddr = 0x1000000

	// pageSize is the x86 base page size; the initrd is page aligned.
	pageSize = 0x1000
)

// Identity map geometry.
const (
	identityMapPDs = 4 // page directories: 4 x 1 GiB
	pageSize2M     = 1 << 21
	ptEntries      = 512
)
