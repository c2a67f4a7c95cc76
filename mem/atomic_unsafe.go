package mem

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// Virtqueue indices are 16-bit, and Go has no 16-bit atomics; the rings
// place them in 4-byte-aligned 32-bit words, which these load and store
// atomically (with the ordering of sync/atomic: sequentially consistent).

func (m *Memory) word(addr uint64) (*uint32, error) {
	if addr%4 != 0 {
		return nil, fmt.Errorf("atomic access at unaligned guest address %#x", addr)
	}
	s, err := m.Slice(addr, 4)
	if err != nil {
		return nil, err
	}
	return (*uint32)(unsafe.Pointer(unsafe.SliceData(s))), nil
}

// LoadUint32 atomically loads the aligned little-endian word at addr.
func (m *Memory) LoadUint32(addr uint64) (uint32, error) {
	p, err := m.word(addr)
	if err != nil {
		return 0, err
	}
	return atomic.LoadUint32(p), nil
}

// StoreUint32 atomically stores the aligned little-endian word at addr.
func (m *Memory) StoreUint32(addr uint64, v uint32) error {
	p, err := m.word(addr)
	if err != nil {
		return err
	}
	atomic.StoreUint32(p, v)
	return nil
}

// fence orders every earlier store before every later load, as the
// virtio spec's memory barriers require between publishing an event
// index and reading the other side's index again (virtio 1.2, 2.7.10):
// a locked read-modify-write is a full barrier on amd64.
func fence() {
	var x atomic.Uint32
	x.Add(1)
}

// StoreUint16 atomically stores a little-endian 16-bit value at the even
// address addr, by compare-and-swap on the aligned word holding it (the
// other half keeps whatever the guest has there), and orders it like
// fence. A value whose word runs past guest RAM is stored plainly and
// fenced.
func (m *Memory) StoreUint16(addr uint64, v uint16) error {
	if addr%2 != 0 {
		return fmt.Errorf("atomic access at unaligned guest address %#x", addr)
	}
	p, err := m.word(addr &^ 3)
	if err != nil {
		if err := m.PutUint16(addr, v); err != nil {
			return err
		}
		fence()
		return nil
	}
	shift := (addr & 2) * 8 // little-endian: the low half is at the lower address
	for {
		old := atomic.LoadUint32(p)
		nw := old&^(0xffff<<shift) | uint32(v)<<shift
		if atomic.CompareAndSwapUint32(p, old, nw) {
			return nil
		}
	}
}
