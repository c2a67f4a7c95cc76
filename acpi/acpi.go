// Package acpi owns the ACPI tables govm gives the guest: RSDP, XSDT, a
// hardware-reduced FADT (sleep control/status and reset registers in I/O
// space, no SCI, no PM1 blocks), a MADT listing one local APIC per vCPU and
// the I/O APIC, and a DSDT with \_S5 (so the guest can power off) and the
// devices Linux finds only through ACPI on such a platform: COM1, pvpanic,
// the CMOS RTC and the PCI root bridge. Table layouts follow the ACPI 6.5 specification, chapter 5.2.
package acpi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Config describes the platform the tables announce.
type Config struct {
	CPUs       int
	IOAPICAddr uint32
	LAPICAddr  uint32
	// SleepPort is the I/O port of the sleep control register (a byte);
	// SleepPort+1 is the sleep status register and SleepPort+2 the reset
	// register.
	SleepPort uint16
	// SerialPort and SerialIRQ describe COM1 in the DSDT (0: none).
	SerialPort uint16
	SerialIRQ  uint8
	// PVPanicPort announces QEMU's pvpanic device (QEMU0001) (0: none).
	PVPanicPort uint16
	// RTCPort and RTCIRQ describe the CMOS RTC (PNP0B00) in the DSDT, and
	// RTCCentury its century byte in the FADT (RTCPort 0: none).
	RTCPort    uint16
	RTCIRQ     uint8
	RTCCentury uint8
	// PCIMMIOBase and PCIMMIOEnd bound the 32-bit memory window of the PCI
	// root bridge (PNP0A03) on bus 0 (0: no PCI root bridge).
	PCIMMIOBase, PCIMMIOEnd uint32
	// PCIRoutes wire each slot's INTA# to a GSI, for drivers that use
	// legacy interrupts (the root bridge's _PRT).
	PCIRoutes []PCIRoute
}

// PCIRoute says INTA# of the device in Slot on bus 0 drives GSI (an I/O
// APIC input: level-triggered, active low, as _PRT entries with a zero
// Source are; ACPI 6.5, 6.2.13).
type PCIRoute struct {
	Slot uint8
	GSI  uint32
}

// Register offsets from Config.SleepPort, and their values.
const (
	SleepControlOffset = 0
	SleepStatusOffset  = 1
	ResetOffset        = 2
	PortCount          = 3

	// ResetValue is what the guest writes to the reset register.
	ResetValue = 0x1
	// S5SleepType is the SLP_TYP \_S5 announces.
	S5SleepType = 5
	// SleepControl bits (ACPI 6.5, 4.8.3.7): SLP_TYP in bits 2-4, SLP_EN bit 5.
	SleepTypeShift = 2
	SleepTypeMask  = 0x7 << SleepTypeShift
	SleepEnable    = 1 << 5
)

// MaxCPUs is the number of local APIC entries the MADT can carry with 8-bit
// APIC IDs (x2APIC entries are not used).
const MaxCPUs = 255

// Table signatures and sizes (ACPI 6.5, 5.2).
const (
	rsdpSize        = 36
	headerSize      = 36
	fadtSize        = 276 // revision 6
	fadtRevision    = 6
	fadtMinor       = 5
	madtRevision    = 5
	xsdtRevision    = 1
	dsdtRevision    = 2
	rsdpRevision    = 2
	oemID           = "GOVM  "
	oemTableID      = "GOVMVM  "
	creatorID       = "GOVM"
	oemRevision     = 1
	creatorRevision = 1

	// FADT field offsets (ACPI 6.5, table 5.9).
	fadtDSDT         = 40
	fadtPMProfile    = 45
	fadtSCIInt       = 46
	fadtCentury      = 108
	fadtIAPCBootArch = 109
	fadtFlags        = 112
	fadtResetReg     = 116
	fadtResetValue   = 128
	fadtMinorVersion = 131
	fadtXDSDT        = 140
	fadtSleepControl = 244
	fadtSleepStatus  = 256
	fadtHypervisorID = 268

	// FADT flags (table 5.10).
	fadtFlagWBINVD      = 1 << 0
	fadtFlagResetRegSup = 1 << 10
	fadtFlagHWReduced   = 1 << 20

	// IAPC_BOOT_ARCH (table 5.11): no VGA, no ASPM control.
	bootArchVGANotPresent = 1 << 2
	bootArchNoASPM        = 1 << 4

	// Generic Address Structure (5.2.3.2).
	gasSize       = 12
	gasSystemIO   = 1
	gasAccessByte = 1

	// MADT (5.2.12).
	madtLocalAPICAddr = 36
	madtFlags         = 40
	madtEntries       = 44
	madtTypeLAPIC     = 0
	madtTypeIOAPIC    = 1
	madtTypeLAPICNMI  = 4
	madtLAPICLen      = 8
	madtIOAPICLen     = 12
	madtLAPICNMILen   = 6
	madtLAPICEnabled  = 1
	madtAllProcessors = 0xff
	lint1             = 1

	pmProfileUnspecified = 0
)

// ErrTooManyCPUs is returned for a CPU count the MADT cannot describe.
var ErrTooManyCPUs = errors.New("too many CPUs for the MADT")

// Tables are the built tables and the guest physical address each was
// built for. Write them at their addresses; the RSDP must be at an address
// the guest scans (the BIOS area, 0xE0000-0xFFFFF).
type Tables struct {
	RSDPAddr uint64
	Blob     []byte // all tables, laid out from RSDPAddr
	// where each table starts inside Blob
	xsdt, fadt, madt, dsdt int
}

// Table returns the table with signature sig (XSDT, FACP, APIC or DSDT)
// as it stands in Blob, or nil if there is none.
func (t *Tables) Table(sig string) []byte {
	off := map[string]int{"XSDT": t.xsdt, "FACP": t.fadt, "APIC": t.madt, "DSDT": t.dsdt}[sig]
	if off <= 0 || off+headerSize > len(t.Blob) {
		return nil
	}
	n := int(binary.LittleEndian.Uint32(t.Blob[off+4:]))
	if n < headerSize || off+n > len(t.Blob) {
		return nil
	}
	return t.Blob[off : off+n]
}

// Build lays out RSDP, XSDT, FADT, MADT and DSDT contiguously (16-byte
// aligned) starting at base.
func Build(base uint64, cfg Config) (*Tables, error) {
	if cfg.CPUs < 1 || cfg.CPUs > MaxCPUs {
		return nil, fmt.Errorf("%w: %d (at most %d)", ErrTooManyCPUs, cfg.CPUs, MaxCPUs)
	}
	for _, r := range cfg.PCIRoutes {
		if r.Slot >= pciSlots {
			return nil, fmt.Errorf("acpi: PCI route for slot %d (bus 0 has %d)", r.Slot, pciSlots)
		}
	}
	if len(cfg.PCIRoutes) > pciSlots {
		return nil, fmt.Errorf("acpi: %d PCI routes for %d slots", len(cfg.PCIRoutes), pciSlots)
	}
	t := &Tables{RSDPAddr: base}
	var blob []byte
	place := func(b []byte) int {
		for len(blob)%16 != 0 {
			blob = append(blob, 0)
		}
		off := len(blob)
		blob = append(blob, b...)
		return off
	}
	rsdpOff := place(make([]byte, rsdpSize))
	dsdt := buildDSDT(cfg)
	t.dsdt = place(dsdt)
	fadt := buildFADT(base+uint64(t.dsdt), cfg)
	t.fadt = place(fadt)
	madt := buildMADT(cfg)
	t.madt = place(madt)
	xsdt := header("XSDT", headerSize+16, xsdtRevision)
	xsdt = binary.LittleEndian.AppendUint64(xsdt, base+uint64(t.fadt))
	xsdt = binary.LittleEndian.AppendUint64(xsdt, base+uint64(t.madt))
	finish(xsdt)
	t.xsdt = place(xsdt)

	rsdp := blob[rsdpOff : rsdpOff+rsdpSize]
	copy(rsdp, "RSD PTR ")
	copy(rsdp[9:], oemID)
	rsdp[15] = rsdpRevision
	binary.LittleEndian.PutUint32(rsdp[20:], rsdpSize)
	binary.LittleEndian.PutUint64(rsdp[24:], base+uint64(t.xsdt))
	rsdp[8] = checksum(rsdp[:20])
	rsdp[32] = checksum(rsdp)
	t.Blob = blob
	return t, nil
}

// header returns a system description table header with its length set;
// finish fills in the checksum once the body is appended.
func header(sig string, length int, rev uint8) []byte {
	h := make([]byte, headerSize, length)
	copy(h[0:4], sig)
	binary.LittleEndian.PutUint32(h[4:], uint32(length))
	h[8] = rev
	copy(h[10:16], oemID)
	copy(h[16:24], oemTableID)
	binary.LittleEndian.PutUint32(h[24:], oemRevision)
	copy(h[28:32], creatorID)
	binary.LittleEndian.PutUint32(h[32:], creatorRevision)
	return h
}

// finish sets the length and checksum of a complete table.
func finish(t []byte) {
	binary.LittleEndian.PutUint32(t[4:], uint32(len(t)))
	t[9] = 0
	t[9] = checksum(t)
}

// checksum returns the byte that makes b sum to zero.
func checksum(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return -s
}

// Sum returns the 8-bit sum of b (zero for a valid table).
func Sum(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return s
}

func gas(b []byte, port uint16) {
	b[0] = gasSystemIO
	b[1] = 8 // register bit width
	b[2] = 0 // bit offset
	b[3] = gasAccessByte
	binary.LittleEndian.PutUint64(b[4:], uint64(port))
}

func buildFADT(dsdt uint64, cfg Config) []byte {
	f := header("FACP", fadtSize, fadtRevision)
	f = f[:fadtSize]
	le := binary.LittleEndian
	le.PutUint32(f[fadtDSDT:], uint32(dsdt))
	f[fadtPMProfile] = pmProfileUnspecified
	le.PutUint16(f[fadtSCIInt:], 0)
	le.PutUint16(f[fadtIAPCBootArch:], bootArchVGANotPresent|bootArchNoASPM)
	le.PutUint32(f[fadtFlags:], fadtFlagWBINVD|fadtFlagResetRegSup|fadtFlagHWReduced)
	gas(f[fadtResetReg:], cfg.SleepPort+ResetOffset)
	f[fadtResetValue] = ResetValue
	f[fadtMinorVersion] = fadtMinor
	le.PutUint64(f[fadtXDSDT:], dsdt)
	gas(f[fadtSleepControl:], cfg.SleepPort+SleepControlOffset)
	gas(f[fadtSleepStatus:], cfg.SleepPort+SleepStatusOffset)
	f[fadtCentury] = cfg.RTCCentury
	copy(f[fadtHypervisorID:], "GOVM")
	finish(f)
	return f
}

func buildMADT(cfg Config) []byte {
	m := header("APIC", madtEntries, madtRevision)
	m = m[:madtEntries]
	le := binary.LittleEndian
	le.PutUint32(m[madtLocalAPICAddr:], cfg.LAPICAddr)
	le.PutUint32(m[madtFlags:], 0) // no dual 8259 setup to disable
	for i := 0; i < cfg.CPUs; i++ {
		m = append(m, madtTypeLAPIC, madtLAPICLen, uint8(i), uint8(i))
		m = le.AppendUint32(m, madtLAPICEnabled)
	}
	m = append(m, madtTypeIOAPIC, madtIOAPICLen, 0 /* I/O APIC ID */, 0)
	m = le.AppendUint32(m, cfg.IOAPICAddr)
	m = le.AppendUint32(m, 0) // GSI base
	m = append(m, madtTypeLAPICNMI, madtLAPICNMILen, madtAllProcessors, 0, 0, lint1)
	finish(m)
	return m
}

// AML opcodes (ACPI 6.5, 20.2).
const (
	amlZeroOp       = 0x00
	amlOneOp        = 0x01
	amlNameOp       = 0x08
	amlBytePrefix   = 0x0a
	amlDWordPrefix  = 0x0c
	amlStringPrefix = 0x0d
	amlScopeOp      = 0x10
	amlBufferOp     = 0x11
	amlPackageOp    = 0x12
	amlExtOpPrefix  = 0x5b
	amlDeviceOp     = 0x82
)

// Small resource descriptors (ACPI 6.5, 6.4.2).
const (
	resIOPort  = 0x47 // I/O port descriptor, 7 bytes follow
	resIO16Bit = 0x01 // decodes 16 address bits
	resIRQ     = 0x22 // IRQ descriptor, 2 bytes follow: edge, active high
	resEndTag  = 0x79
)

// amlPkgLength encodes a PkgLength for a body of n bytes; the length
// counts its own bytes (ACPI 6.5, 20.2.4).
func amlPkgLength(n int) []byte {
	if n+1 <= 0x3f {
		return []byte{byte(n + 1)}
	}
	for extra := 1; extra <= 3; extra++ {
		total := n + 1 + extra
		if total < 1<<(4+8*extra) {
			b := []byte{byte(extra<<6 | total&0xf)}
			for i := 0; i < extra; i++ {
				b = append(b, byte(total>>(4+8*i)))
			}
			return b
		}
	}
	panic("AML package too large") // tables here are a few hundred bytes
}

func amlName(name string, value []byte) []byte {
	return append(append([]byte{amlNameOp}, name...), value...)
}

func amlPkg(op []byte, body []byte) []byte {
	out := append([]byte(nil), op...)
	out = append(out, amlPkgLength(len(body))...)
	return append(out, body...)
}

func amlScope(name string, body ...[]byte) []byte {
	return amlPkg([]byte{amlScopeOp}, append([]byte(name), bytes.Join(body, nil)...))
}

func amlDevice(name string, body ...[]byte) []byte {
	return amlPkg([]byte{amlExtOpPrefix, amlDeviceOp}, append([]byte(name), bytes.Join(body, nil)...))
}

func amlBuffer(data []byte) []byte {
	return amlPkg([]byte{amlBufferOp}, append([]byte{amlBytePrefix, byte(len(data))}, data...))
}

// eisaID compresses a PNP ID such as "PNP0501" (ACPI 6.5, 19.6.35 EISAID).
func eisaID(id string) []byte {
	v := uint32(id[0]-0x40)<<26 | uint32(id[1]-0x40)<<21 | uint32(id[2]-0x40)<<16
	for i := 3; i < 7; i++ {
		c := id[i]
		var d uint32
		switch {
		case c >= '0' && c <= '9':
			d = uint32(c - '0')
		default:
			d = uint32(c-'A') + 10
		}
		v |= d << (4 * (6 - i))
	}
	// Stored big-endian as the ID reads.
	return []byte{amlDWordPrefix, byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
}

// serialDevice describes a 16550 UART so the guest's 8250_pnp driver
// routes its interrupt through ACPI (in hardware-reduced mode there is no
// legacy PIC and no ISA IRQ is set up without it).
func serialDevice(name string, uid byte, port uint16, irq uint8) []byte {
	res := []byte{
		resIOPort, resIO16Bit, byte(port), byte(port >> 8), byte(port), byte(port >> 8), 1, 8,
		resIRQ, byte(1 << irq), byte(uint16(1<<irq) >> 8),
		resEndTag, 0,
	}
	return amlDevice(name,
		amlName("_HID", eisaID("PNP0501")),
		amlName("_UID", []byte{amlBytePrefix, uid}),
		amlName("_CRS", amlBuffer(res)),
	)
}

// rtcPorts is the CMOS RTC's index and data ports.
const rtcPorts = 2

// rtcDevice describes the CMOS RTC. Without it Linux registers a
// platform RTC whose ISA interrupt no one maps in a hardware-reduced
// platform (no PIC), and rtc_cmos fails to probe (-EINVAL); declared
// here, the PNP layer maps its IRQ through the I/O APIC.
func rtcDevice(port uint16, irq uint8) []byte {
	res := []byte{
		resIOPort, resIO16Bit, byte(port), byte(port >> 8), byte(port), byte(port >> 8), 1, rtcPorts,
		resIRQ, byte(1 << irq), byte(uint16(1<<irq) >> 8),
		resEndTag, 0,
	}
	return amlDevice("RTC_",
		amlName("_HID", eisaID("PNP0B00")),
		amlName("_CRS", amlBuffer(res)),
	)
}

// amlString encodes a string constant.
func amlString(s string) []byte {
	return append(append([]byte{amlStringPrefix}, s...), 0)
}

// pvpanicDevice describes QEMU's pvpanic ISA port, which the guest's
// pvpanic driver binds to by its _HID.
func pvpanicDevice(port uint16) []byte {
	res := []byte{
		resIOPort, resIO16Bit, byte(port), byte(port >> 8), byte(port), byte(port >> 8), 1, 1,
		resEndTag, 0,
	}
	return amlDevice("PEVT",
		amlName("_HID", amlString("QEMU0001")),
		amlName("_CRS", amlBuffer(res)),
	)
}

// Large resource descriptors (ACPI 6.5, 6.4.3).
const (
	resWordAddr  = 0x88
	resDWordAddr = 0x87
	resTypeMem   = 0
	resTypeIO    = 1
	resTypeBus   = 2
	resMinMaxFix = 0x0c // _MIF and _MAF: the range is fixed
	resMemRW     = 0x01
	resIOEntire  = 0x03
)

func wordAddr(typ, typeFlags uint8, min, max uint16) []byte {
	b := []byte{resWordAddr, 13, 0, typ, resMinMaxFix, typeFlags}
	b = binary.LittleEndian.AppendUint16(b, 0) // granularity
	b = binary.LittleEndian.AppendUint16(b, min)
	b = binary.LittleEndian.AppendUint16(b, max)
	b = binary.LittleEndian.AppendUint16(b, 0) // translation
	return binary.LittleEndian.AppendUint16(b, max-min+1)
}

func dwordMem(min, max uint32) []byte {
	b := []byte{resDWordAddr, 23, 0, resTypeMem, resMinMaxFix, resMemRW}
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, min)
	b = binary.LittleEndian.AppendUint32(b, max)
	b = binary.LittleEndian.AppendUint32(b, 0)
	return binary.LittleEndian.AppendUint32(b, max-min+1)
}

// pciSlots is the number of device slots on a PCI bus.
const pciSlots = 32

// prtAllFunctions is the _PRT Address of every function of a device: the
// slot in the high word, 0xFFFF in the low one (ACPI 6.5, 6.2.13).
const prtAllFunctions = 0xffff

// amlPRT encodes
//
//	Name (_PRT, Package () { Package () { ADDR, 0 (INTA), 0, GSI }, ... })
func amlPRT(routes []PCIRoute) []byte {
	var entries []byte
	for _, r := range routes {
		addr := uint32(r.Slot)<<16 | prtAllFunctions
		e := []byte{4, amlDWordPrefix}
		e = binary.LittleEndian.AppendUint32(e, addr)
		e = append(e, amlZeroOp /* pin INTA */, amlZeroOp /* Source: a GSI */, amlDWordPrefix)
		e = binary.LittleEndian.AppendUint32(e, r.GSI)
		entries = append(entries, amlPkg([]byte{amlPackageOp}, e)...)
	}
	return amlName("_PRT", amlPkg([]byte{amlPackageOp}, append([]byte{byte(len(routes))}, entries...)))
}

// pciRootDevice describes the PCI host bridge so the guest scans bus 0:
// with ACPI, Linux finds PCI only through PNP0A03 devices.
func pciRootDevice(memBase, memEnd uint32, routes []PCIRoute) []byte {
	var crs []byte
	crs = append(crs, wordAddr(resTypeBus, 0, 0, 0)...)
	crs = append(crs, resIOPort, resIO16Bit, 0xf8, 0x0c, 0xf8, 0x0c, 1, 8) // 0xCF8, 8 ports
	crs = append(crs, wordAddr(resTypeIO, resIOEntire, 0x0000, 0x0cf7)...)
	crs = append(crs, wordAddr(resTypeIO, resIOEntire, 0x0d00, 0xffff)...)
	crs = append(crs, dwordMem(memBase, memEnd-1)...)
	crs = append(crs, resEndTag, 0)
	return amlDevice("PCI0",
		amlName("_HID", eisaID("PNP0A03")),
		amlName("_ADR", []byte{amlZeroOp}),
		amlName("_SEG", []byte{amlZeroOp}),
		amlName("_UID", []byte{amlZeroOp}),
		amlName("_BBN", []byte{amlZeroOp}),
		amlName("_CRS", amlBuffer(crs)),
		amlPRT(routes),
	)
}

// buildDSDT returns a DSDT declaring
//
//	Name (_S5, Package (4) { 5, 0, 0, 0 })
//	Scope (\_SB) {
//		Device (COM1) { PNP0501 at 0x3F8, IRQ 4 }
//		Device (PEVT) { QEMU0001 at 0x505 }
//		Device (RTC_) { PNP0B00 at 0x70, IRQ 8 }
//		Device (PCI0) { PNP0A03, bus 0, its windows and _PRT }
//	}
func buildDSDT(cfg Config) []byte {
	d := header("DSDT", headerSize, dsdtRevision)
	s5 := amlName("_S5_", amlPkg([]byte{amlPackageOp},
		[]byte{4, amlBytePrefix, S5SleepType, amlZeroOp, amlZeroOp, amlZeroOp}))
	d = append(d, s5...)
	var sb [][]byte
	if cfg.SerialPort != 0 {
		sb = append(sb, serialDevice("COM1", 1, cfg.SerialPort, cfg.SerialIRQ))
	}
	if cfg.PVPanicPort != 0 {
		sb = append(sb, pvpanicDevice(cfg.PVPanicPort))
	}
	if cfg.RTCPort != 0 {
		sb = append(sb, rtcDevice(cfg.RTCPort, cfg.RTCIRQ))
	}
	if cfg.PCIMMIOEnd > cfg.PCIMMIOBase {
		sb = append(sb, pciRootDevice(cfg.PCIMMIOBase, cfg.PCIMMIOEnd, cfg.PCIRoutes))
	}
	if len(sb) > 0 {
		d = append(d, amlScope("_SB_", sb...)...)
	}
	finish(d)
	return d
}
