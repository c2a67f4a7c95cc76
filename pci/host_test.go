package pci

import "testing"

func TestPCIHostConfig(t *testing.T) {
	h := NewHost()
	cfg := func(addr uint32) uint32 {
		h.Write(pciAddrOff, []byte{byte(addr), byte(addr >> 8), byte(addr >> 16), byte(addr >> 24)})
		b := make([]byte, 4)
		h.Read(pciDataOff, b)
		return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	}
	if v := cfg(0x8000_0000); v != 0x1237_8086 {
		t.Errorf("00:00.0 id = %#x", v)
	}
	if v := cfg(0x8000_0800); v != 0xffff_ffff {
		t.Errorf("empty slot = %#x", v)
	}
	if v := cfg(0x0000_0000); v != 0xffff_ffff {
		t.Errorf("disabled cycle = %#x", v)
	}
	if v := cfg(0x8000_0008); v>>16 != 0x0600 {
		t.Errorf("class = %#x", v)
	}
}
