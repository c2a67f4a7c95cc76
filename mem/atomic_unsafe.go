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
