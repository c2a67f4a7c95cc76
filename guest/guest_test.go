package guest

import (
	"encoding/binary"
	"testing"

	"github.com/govm/govm/acpi"
)

// TestIsGovmTable checks the guest's test against the tables govm builds:
// the DSDT the guest reads must say govm, and another VMM's must not.
func TestIsGovmTable(t *testing.T) {
	tb, err := acpi.Build(0xe0000, acpi.Config{CPUs: 1, IOAPICAddr: 0xfec00000, LAPICAddr: 0xfee00000, SleepPort: 0x600, SerialPort: 0x3f8, SerialIRQ: 4})
	if err != nil {
		t.Fatal(err)
	}
	dsdt := tb.Blob[tb.DSDT:]
	dsdt = dsdt[:binary.LittleEndian.Uint32(dsdt[4:])]
	if string(dsdt[:4]) != "DSDT" || !IsGovmTable(dsdt) {
		t.Fatalf("govm's DSDT header % x not recognised", dsdt[:36])
	}
	for name, h := range map[string]string{
		"QEMU's":    "DSDT\x00\x10\x00\x00\x01\x00BOCHS BXPC    ",
		"truncated": "DSDT\x00\x10\x00\x00\x01\x00GOV",
		"empty":     "",
	} {
		if IsGovmTable([]byte(h)) {
			t.Errorf("%s header taken for govm's", name)
		}
	}
}
