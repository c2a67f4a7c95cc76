package acpi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func testConfig() Config {
	return Config{CPUs: 2, IOAPICAddr: 0xfec00000, LAPICAddr: 0xfee00000, SleepPort: 0x600, SerialPort: 0x3f8, SerialIRQ: 4,
		RTCPort: 0x70, RTCIRQ: 8, RTCCentury: 0x32}
}

func TestTablesChecksumsAndLinks(t *testing.T) {
	const base = 0xe0000
	tb, err := Build(base, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	b := tb.Blob
	rsdp := b[:rsdpSize]
	if string(rsdp[:8]) != "RSD PTR " || Sum(rsdp[:20]) != 0 || Sum(rsdp) != 0 || rsdp[15] != 2 {
		t.Fatalf("bad RSDP % x", rsdp)
	}
	if le.Uint64(rsdp[24:]) != base+uint64(tb.xsdt) {
		t.Fatal("RSDP does not point at the XSDT")
	}
	table := func(off int, sig string) []byte {
		t.Helper()
		if off%16 != 0 {
			t.Errorf("%s at unaligned offset %d", sig, off)
		}
		n := int(le.Uint32(b[off+4:]))
		tb := b[off : off+n]
		if string(tb[:4]) != sig {
			t.Fatalf("signature %q at %d, want %s", tb[:4], off, sig)
		}
		if Sum(tb) != 0 {
			t.Fatalf("%s checksum %d", sig, Sum(tb))
		}
		return tb
	}
	xsdt := table(tb.xsdt, "XSDT")
	if len(xsdt) != headerSize+16 || le.Uint64(xsdt[36:]) != base+uint64(tb.fadt) || le.Uint64(xsdt[44:]) != base+uint64(tb.madt) {
		t.Fatalf("XSDT entries % x", xsdt[36:])
	}
	fadt := table(tb.fadt, "FACP")
	if len(fadt) != fadtSize || le.Uint64(fadt[fadtXDSDT:]) != base+uint64(tb.dsdt) {
		t.Fatal("FADT does not point at the DSDT")
	}
	if le.Uint32(fadt[fadtFlags:])&fadtFlagHWReduced == 0 {
		t.Fatal("FADT not hardware-reduced")
	}
	if fadt[fadtSleepControl] != gasSystemIO || le.Uint64(fadt[fadtSleepControl+4:]) != 0x600 ||
		le.Uint64(fadt[fadtSleepStatus+4:]) != 0x601 || le.Uint64(fadt[fadtResetReg+4:]) != 0x602 || fadt[fadtResetValue] != ResetValue {
		t.Fatal("FADT register blocks wrong")
	}
	madt := table(tb.madt, "APIC")
	// Two LAPIC entries, one IOAPIC, one LAPIC NMI.
	wantLen := madtEntries + 2*madtLAPICLen + madtIOAPICLen + madtLAPICNMILen
	if len(madt) != wantLen {
		t.Fatalf("MADT length %d, want %d", len(madt), wantLen)
	}
	e := madt[madtEntries:]
	for i := 0; i < 2; i++ {
		if e[0] != madtTypeLAPIC || e[3] != byte(i) || le.Uint32(e[4:]) != madtLAPICEnabled {
			t.Fatalf("LAPIC entry %d: % x", i, e[:8])
		}
		e = e[madtLAPICLen:]
	}
	if e[0] != madtTypeIOAPIC || le.Uint32(e[4:]) != 0xfec00000 {
		t.Fatalf("IOAPIC entry % x", e[:12])
	}
	dsdt := table(tb.dsdt, "DSDT")
	body := dsdt[headerSize:]
	wantS5 := []byte{0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00}
	if !bytes.HasPrefix(body, wantS5) {
		t.Fatalf("DSDT body % x, want prefix % x", body, wantS5)
	}
	if !bytes.Contains(body, []byte{0x0c, 0x41, 0xd0, 0x05, 0x01}) {
		t.Fatal("DSDT lacks the PNP0501 EISA ID")
	}
	if !bytes.Contains(body, []byte{resIOPort, resIO16Bit, 0xf8, 0x03, 0xf8, 0x03, 1, 8, resIRQ, 0x10, 0x00, resEndTag}) {
		t.Fatal("DSDT lacks COM1's resources")
	}
	if !bytes.Contains(body, []byte{0x0c, 0x41, 0xd0, 0x0b, 0x00}) {
		t.Fatal("DSDT lacks the RTC's PNP0B00 EISA ID")
	}
	if !bytes.Contains(body, []byte{resIOPort, resIO16Bit, 0x70, 0x00, 0x70, 0x00, 1, 2, resIRQ, 0x00, 0x01, resEndTag}) {
		t.Fatal("DSDT lacks the RTC's resources (ports 0x70-0x71, IRQ 8)")
	}
	if fadt[fadtCentury] != 0x32 {
		t.Fatalf("FADT century byte %#x, want 0x32", fadt[fadtCentury])
	}
}

func TestPkgLength(t *testing.T) {
	tests := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x01}},
		{62, []byte{0x3f}},
		{63, []byte{0x41, 0x04}},   // 65 = 0x41: low nibble 1, next byte 4
		{4000, []byte{0x42, 0xfa}}, // 4002: low nibble 2, then 4002>>4
	}
	for _, tt := range tests {
		if got := amlPkgLength(tt.n); !bytes.Equal(got, tt.want) {
			t.Errorf("amlPkgLength(%d) = % x, want % x", tt.n, got, tt.want)
		}
	}
}

func TestTooManyCPUs(t *testing.T) {
	c := testConfig()
	for _, n := range []int{0, MaxCPUs + 1} {
		c.CPUs = n
		if _, err := Build(0xe0000, c); !errors.Is(err, ErrTooManyCPUs) {
			t.Errorf("CPUs %d: err = %v", n, err)
		}
	}
}

// TestPRT: the root bridge's _PRT maps each slot's INTA# to its GSI, in
// the encoding of ACPI 6.5, 6.2.13 (Package { Address, Pin, Source,
// SourceIndex }).
func TestPRT(t *testing.T) {
	cfg := testConfig()
	cfg.PCIMMIOBase, cfg.PCIMMIOEnd = 0xc0000000, 0xe0000000
	cfg.PCIRoutes = []PCIRoute{{Slot: 1, GSI: 17}, {Slot: 9, GSI: 17}, {Slot: 2, GSI: 18}}
	tb, err := Build(0xe0000, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dsdt := tb.Blob[tb.dsdt:]
	dsdt = dsdt[:binary.LittleEndian.Uint32(dsdt[4:])]
	i := bytes.Index(dsdt, []byte("_PRT"))
	if i < 0 || dsdt[i-1] != amlNameOp {
		t.Fatal("DSDT has no Name (_PRT)")
	}
	entry := func(slot byte, gsi byte) []byte {
		return []byte{amlPackageOp, 14, 4, amlDWordPrefix, 0xff, 0xff, slot, 0, amlZeroOp, amlZeroOp, amlDWordPrefix, gsi, 0, 0, 0}
	}
	want := []byte{amlPackageOp, 2 + 3*15, 3}
	want = append(append(append(want, entry(1, 17)...), entry(9, 17)...), entry(2, 18)...)
	if got := dsdt[i+4:]; !bytes.HasPrefix(got, want) {
		t.Fatalf("_PRT\n got % x\nwant % x", got[:min(len(got), len(want))], want)
	}

	for _, bad := range [][]PCIRoute{{{Slot: 32, GSI: 16}}, make([]PCIRoute, 33)} {
		cfg.PCIRoutes = bad
		if _, err := Build(0xe0000, cfg); err == nil {
			t.Errorf("routes %v accepted", bad[:1])
		}
	}
}

// TestTable: each table Build lays out is found by its signature, whole.
func TestTable(t *testing.T) {
	tb, err := Build(0xe0000, Config{CPUs: 2, IOAPICAddr: 0xfec00000, LAPICAddr: 0xfee00000, SleepPort: 0x600})
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []string{"XSDT", "FACP", "APIC", "DSDT"} {
		b := tb.Table(sig)
		if len(b) < headerSize || string(b[:4]) != sig || int(binary.LittleEndian.Uint32(b[4:])) != len(b) {
			t.Errorf("%s: % x", sig, b[:min(len(b), 8)])
		}
	}
	if tb.Table("SSDT") != nil {
		t.Error("a table Build does not make was found")
	}
}
