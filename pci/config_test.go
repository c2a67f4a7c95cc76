package pci

import (
	"encoding/binary"
	"testing"
)

func read32(c *Config, off int) uint32 {
	var b [4]byte
	c.Read(off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func write32(c *Config, off int, v uint32) {
	c.Write(off, binary.LittleEndian.AppendUint32(nil, v))
}

// TestBARSizing: the guest learns a BAR's size by writing all ones and
// reading back the mask (PCI 3.0, 6.2.5.1); the type bits stay; a
// placement within the mask sticks.
func TestBARSizing(t *testing.T) {
	tests := []struct {
		size     uint64
		wantLow  uint32
		wantHigh uint32
	}{
		{0x8000, 0xffff8000 | barMem64, 0xffffffff},
		{0x1000, 0xfffff000 | barMem64, 0xffffffff},
		{16 << 20, 0xff000000 | barMem64, 0xffffffff},
	}
	for _, tt := range tests {
		c := NewConfig(0x1af4, 0x1042, 1, 0, 0)
		c.AddMem64BAR(0, tt.size, 0xc000_0000)
		if got := c.BARAddr(0); got != 0xc000_0000 {
			t.Errorf("size %#x: initial address %#x", tt.size, got)
		}
		write32(c, BAR0, 0xffffffff)
		write32(c, BAR0+4, 0xffffffff)
		if lo, hi := read32(c, BAR0), read32(c, BAR0+4); lo != tt.wantLow || hi != tt.wantHigh {
			t.Errorf("size %#x: probe reads %#x %#x, want %#x %#x", tt.size, lo, hi, tt.wantLow, tt.wantHigh)
		}
		place := uint64(0x1_0000_0000) + tt.size
		write32(c, BAR0, uint32(place))
		write32(c, BAR0+4, uint32(place>>32))
		if got := c.BARAddr(0); got != place {
			t.Errorf("size %#x: placed at %#x, reads %#x", tt.size, place, got)
		}
	}
}

// TestWriteMask: the guest changes only the bits it may; reads past the
// space are all ones and writes there are dropped.
func TestWriteMask(t *testing.T) {
	c := NewConfig(0x1af4, 0x1041, 2, 0, 0)
	var hook []int
	c.OnWrite = func(off int, data []byte) { hook = append(hook, off) }
	tests := []struct {
		name  string
		off   int
		write uint32
		want  uint32 // read back, 32 bits at off
	}{
		{"vendor and device are read-only", VendorID, 0xdeadbeef, 0x1041_1af4},
		{"command takes IO, memory, master, INTx off; status is read-only", Command, 0xffff_ffff, CommandIO | CommandMemory | CommandMaster | CommandIntxOff},
		{"class is read-only", RevisionID, 0xffff_ffff, 0x0200_0000},
		{"interrupt line is writable, pin is not", InterruptLine, 0xffff_ffff, 0x0000_00ff},
		{"an unused register", 0xf0, 0xffff_ffff, 0},
	}
	for _, tt := range tests {
		write32(c, tt.off, tt.write)
		if got := read32(c, tt.off); got != tt.want {
			t.Errorf("%s: reads %#x after writing %#x, want %#x", tt.name, got, tt.write, tt.want)
		}
	}
	if len(hook) != len(tests) {
		t.Errorf("OnWrite saw %d writes, want %d", len(hook), len(tests))
	}
	var b [4]byte
	c.Read(ConfigSize-2, b[:])
	if b[2] != 0xff || b[3] != 0xff {
		t.Errorf("bytes past the space read %x, want ff", b[2:])
	}
	c.Write(ConfigSize-1, []byte{1, 2, 3, 4}) // must not panic
}

// TestCapabilityList: capabilities chain from the Capabilities Pointer
// through each next byte to 0, each dword-aligned in the device-specific
// area, with the Status register's Capabilities List bit set; a
// capability's write mask applies to its body only.
func TestCapabilityList(t *testing.T) {
	c := NewConfig(0x1af4, 0x1042, 1, 0, 0)
	if c.Uint16(Status)&StatusCapList != 0 {
		t.Fatal("capability list bit set with no capabilities")
	}
	bodies := [][]byte{make([]byte, 14), make([]byte, 18), make([]byte, 10)}
	ids := []uint8{CapVendor, CapVendor, CapMSIX}
	var offs []int
	for i, body := range bodies {
		var mask []byte
		if ids[i] == CapMSIX {
			mask = []byte{0, 0xc0}
		}
		offs = append(offs, c.AddCapability(ids[i], body, mask))
	}
	if c.Uint16(Status)&StatusCapList == 0 {
		t.Fatal("capability list bit clear")
	}
	var walked []int
	var b [2]byte
	c.Read(CapPtr, b[:1])
	for p := int(b[0]); p != 0; p = int(b[1]) {
		if p < firstCap || p%4 != 0 || len(walked) > len(ids) {
			t.Fatalf("capability at %#x (after %v)", p, walked)
		}
		walked = append(walked, p)
		c.Read(p, b[:])
		if b[0] != ids[len(walked)-1] {
			t.Errorf("capability %d at %#x has ID %#x, want %#x", len(walked)-1, p, b[0], ids[len(walked)-1])
		}
	}
	if len(walked) != len(offs) {
		t.Fatalf("walked %v, added at %v", walked, offs)
	}
	for i := range offs {
		if walked[i] != offs[i] {
			t.Errorf("walked %v, added at %v", walked, offs)
		}
	}
	msix := offs[2]
	c.Write(msix+2, []byte{0xff, 0xff})
	if got := c.Uint16(msix + 2); got != 0xc000 {
		t.Errorf("MSI-X message control %#x after writing ones, want only enable and mask (0xc000)", got)
	}
	c.Write(offs[0], []byte{0xff, 0xff})
	if got := c.Uint16(offs[0]); got != uint16(offs[1])<<8|uint16(CapVendor) {
		t.Errorf("a capability's ID and next pointer changed: %#x", got)
	}
}

// TestIntxStatus: the Interrupt Status bit follows the device, not the
// guest's writes.
func TestIntxStatus(t *testing.T) {
	c := NewConfig(0x1af4, 0x1042, 1, 0, 0)
	c.SetIntxStatus(true)
	if c.Uint16(Status)&StatusIntx == 0 {
		t.Fatal("status bit clear while asserted")
	}
	c.Write(Status, []byte{0, 0})
	if c.Uint16(Status)&StatusIntx == 0 {
		t.Fatal("a guest write cleared the read-only Interrupt Status")
	}
	c.SetIntxStatus(false)
	if c.Uint16(Status)&StatusIntx != 0 {
		t.Fatal("status bit set after deassert")
	}
}
