package mem

import (
	"errors"
	"testing"
)

func twoRegions(t *testing.T) *Memory {
	t.Helper()
	m, err := New(
		Region{Base: 0x1000_0000, Data: make([]byte, 0x1000)},
		Region{Base: 0, Data: make([]byte, 0x2000)},
	)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSliceBounds(t *testing.T) {
	m := twoRegions(t)
	tests := []struct {
		addr, n uint64
		ok      bool
	}{
		{0, 0x2000, true},
		{0x1fff, 1, true},
		{0x1fff, 2, false}, // crosses the end of region 0
		{0x2000, 0, true},  // empty access at the end
		{0x2000, 1, false}, // in the gap
		{0x1000_0000, 0x1000, true},
		{0x1000_0000 - 1, 2, false}, // straddles into region 1 from the gap
		{0x1000_0fff, 1, true},
		{0x1000_1000, 1, false},
		{^uint64(0), 2, false},    // wraps
		{0x10, ^uint64(0), false}, // huge length
		{0x1000_0000, ^uint64(0) - 0x1000_0000 + 1, false},
	}
	for _, tt := range tests {
		s, err := m.Slice(tt.addr, tt.n)
		if tt.ok {
			if err != nil || uint64(len(s)) != tt.n {
				t.Errorf("Slice(%#x, %#x) = len %d, %v; want ok", tt.addr, tt.n, len(s), err)
			}
			continue
		}
		var ae *AccessError
		if !errors.As(err, &ae) || ae.Addr != tt.addr || ae.Len != tt.n {
			t.Errorf("Slice(%#x, %#x) err = %v, want AccessError", tt.addr, tt.n, err)
		}
	}
}

func TestSliceCannotGrow(t *testing.T) {
	m := twoRegions(t)
	s, err := m.Slice(0x100, 4)
	if err != nil {
		t.Fatal(err)
	}
	if cap(s) != 4 {
		t.Fatalf("cap = %d, want 4: a caller could append past its range", cap(s))
	}
}

func TestOverlapRefused(t *testing.T) {
	_, err := New(Region{Base: 0, Data: make([]byte, 0x2000)}, Region{Base: 0x1000, Data: make([]byte, 0x1000)})
	if !errors.Is(err, ErrOverlap) {
		t.Fatalf("err = %v, want ErrOverlap", err)
	}
	_, err = New(Region{Base: 0})
	if !errors.Is(err, ErrOverlap) {
		t.Fatalf("empty region: err = %v", err)
	}
}

func TestReadWriteLittleEndian(t *testing.T) {
	m := twoRegions(t)
	if err := m.PutUint64(0x1000_0008, 0x1122334455667788); err != nil {
		t.Fatal(err)
	}
	v32, _ := m.Uint32(0x1000_0008)
	v16, _ := m.Uint16(0x1000_000c)
	if v32 != 0x55667788 || v16 != 0x3344 {
		t.Fatalf("got %#x %#x", v32, v16)
	}
	if err := m.PutUint32(0x1ffe, 1); err == nil {
		t.Fatal("write crossing the region end succeeded")
	}
	if err := m.WriteAt([]byte{1, 2, 3}, 0x2000); err == nil {
		t.Fatal("write in the gap succeeded")
	}
}

func TestAllocate(t *testing.T) {
	m, err := Allocate([]Range{{Base: 0, Size: 1 << 20}, {Base: 1 << 32, Size: 2 << 20}}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Size() != 3<<20 {
		t.Fatalf("size %d", m.Size())
	}
	if err := m.PutUint32(1<<32+4, 7); err != nil {
		t.Fatal(err)
	}
	if !m.Contains(1<<32, 2<<20) || m.Contains(1<<20, 1) {
		t.Fatal("Contains wrong")
	}
}

func TestStoreUint16(t *testing.T) {
	m, err := New(Region{Base: 0x1000, Data: make([]byte, 16)})
	if err != nil {
		t.Fatal(err)
	}
	m.PutUint32(0x1000, 0xaaaabbbb)
	if err := m.StoreUint16(0x1002, 0x1234); err != nil {
		t.Fatal(err)
	}
	if err := m.StoreUint16(0x1000, 0x5678); err != nil {
		t.Fatal(err)
	}
	if w, _ := m.Uint32(0x1000); w != 0x12345678 {
		t.Fatalf("word %#x, want 0x12345678", w)
	}
	// The upper half of the last word.
	if err := m.StoreUint16(0x100e, 0x9abc); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Uint16(0x100e); v != 0x9abc {
		t.Fatalf("%#x", v)
	}
	for _, bad := range []uint64{0x1001, 0x1010, 0xfff} {
		if err := m.StoreUint16(bad, 1); err == nil {
			t.Errorf("StoreUint16(%#x) accepted", bad)
		}
	}
}

// TestResident: untouched RAM is not resident; touched pages are.
func TestResident(t *testing.T) {
	m, err := Allocate([]Range{{Base: 0, Size: 64 << 20}}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	before, err := m.Resident()
	if err != nil {
		t.Fatal(err)
	}
	for off := uint64(0); off < 8<<20; off += 4096 {
		if err := m.WriteAt([]byte{1}, off); err != nil {
			t.Fatal(err)
		}
	}
	after, err := m.Resident()
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 8<<20 || after > 16<<20 {
		t.Fatalf("resident %d bytes before and %d after touching 8 MiB of 64", before, after)
	}
}

// TestAllocateAlignsHugePages checks that each region sits in the host as
// its guest base sits in guest physical space, modulo 2 MiB, so a guest
// large page can be a host huge page.
func TestAllocateAlignsHugePages(t *testing.T) {
	ranges := []Range{{Base: 0, Size: 4 << 20}, {Base: 1<<32 + 0x3000, Size: 1 << 20}}
	m, err := Allocate(ranges, true)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i, r := range m.Regions() {
		if got, want := uint64(hostAddr(r.Data))%HugePageSize, ranges[i].Base%HugePageSize; got != want {
			t.Errorf("region %#x at host offset %#x in its 2 MiB page, want %#x", r.Base, got, want)
		}
		if uint64(len(r.Data)) != ranges[i].Size || cap(r.Data) != len(r.Data) {
			t.Errorf("region %#x: len %d cap %d, want %d", r.Base, len(r.Data), cap(r.Data), ranges[i].Size)
		}
		// The whole region is usable, to its last byte.
		if err := m.PutUint32(r.End()-4, 0xdeadbeef); err != nil {
			t.Error(err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
