// Package mem owns guest physical memory: the mapping of guest RAM regions
// into govm's address space and every access to it. All reads and writes of
// guest memory in govm go through Memory, which checks that an access lies
// wholly inside one RAM region and returns a typed *AccessError otherwise, so
// an address, length or index coming from the guest can never reach host
// memory outside guest RAM.
package mem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// Region is one contiguous range of guest RAM backed by host memory.
type Region struct {
	Base uint64 // guest physical address of Data[0]
	Data []byte
}

// End is the first guest physical address after the region.
func (r Region) End() uint64 { return r.Base + uint64(len(r.Data)) }

// AccessError is an access outside guest RAM, or one that crosses the end
// of a RAM region.
type AccessError struct {
	Addr uint64
	Len  uint64
}

func (e *AccessError) Error() string {
	return fmt.Sprintf("guest memory access [%#x, +%#x) outside RAM", e.Addr, e.Len)
}

// ErrOverlap is returned by New for regions that overlap or wrap.
var ErrOverlap = errors.New("guest memory regions overlap")

// Memory is guest physical memory: a sorted set of non-overlapping regions.
// It is safe for concurrent use; it does not itself order accesses (guest
// RAM is shared with running vCPUs).
type Memory struct {
	regions []Region
	mapped  bool
	maps    [][]byte // what Allocate mapped, each holding one region
}

// New builds a Memory over caller-provided buffers (tests use plain byte
// slices; govm itself uses Allocate).
func New(regions ...Region) (*Memory, error) {
	rs := append([]Region(nil), regions...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].Base < rs[j].Base })
	for i, r := range rs {
		if len(r.Data) == 0 || r.End() < r.Base {
			return nil, fmt.Errorf("%w: region at %#x of %d bytes", ErrOverlap, r.Base, len(r.Data))
		}
		if i > 0 && rs[i-1].End() > r.Base {
			return nil, fmt.Errorf("%w: %#x-%#x and %#x-%#x", ErrOverlap, rs[i-1].Base, rs[i-1].End(), r.Base, r.End())
		}
	}
	return &Memory{regions: rs}, nil
}

// Range is a guest physical range to back with RAM.
type Range struct {
	Base, Size uint64
}

// HugePageSize is the x86-64 large page (SDM vol. 3, 4.5, a 2-MByte page
// mapped by a PDE): guest RAM is laid out so that each 2 MiB-aligned
// guest physical range is one 2 MiB-aligned host range.
const HugePageSize = 2 << 20

// Allocate maps anonymous host memory for each range. The pages are
// reserved lazily by the host kernel, so an idle guest costs little.
//
// With hugePages, each region starts on a 2 MiB boundary of the host's
// address space, as far from one as its guest base is (so 0 for every
// region at a 2 MiB guest address), and is advised for transparent huge
// pages, as QEMU maps its RAM: the host can then back a guest 2 MiB range
// with one huge page and KVM can map it with one large nested page table
// entry, instead of taking a nested page fault per 4 KiB page. Without
// it, the mapping is plain and the host's THP policy decides (govm maps
// plainly under an emulated CPU; see cmd/govm).
func Allocate(ranges []Range, hugePages bool) (*Memory, error) {
	var rs []Region
	var maps [][]byte
	unmap := func() {
		for _, b := range maps {
			unix.Munmap(b)
		}
	}
	for _, r := range ranges {
		if r.Size == 0 {
			continue
		}
		pad := uint64(0)
		if hugePages {
			pad = HugePageSize
		}
		b, err := unix.Mmap(-1, 0, int(r.Size+pad), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			unmap()
			return nil, fmt.Errorf("mmap %d MiB of guest RAM at %#x: %w", r.Size>>20, r.Base, err)
		}
		maps = append(maps, b)
		data := b
		if hugePages {
			skip := (r.Base - uint64(hostAddr(b))) % HugePageSize
			data = b[skip : skip+r.Size : skip+r.Size]
			// Advice only: a host without THP (or with it off) says
			// EINVAL, and the memory works the same with small pages.
			_ = unix.Madvise(data, unix.MADV_HUGEPAGE)
		}
		rs = append(rs, Region{Base: r.Base, Data: data})
	}
	m, err := New(rs...)
	if err != nil {
		unmap()
		return nil, err
	}
	m.mapped, m.maps = true, maps
	return m, nil
}

// Close unmaps memory made by Allocate.
func (m *Memory) Close() error {
	if !m.mapped {
		return nil
	}
	var first error
	for _, b := range m.maps {
		if err := unix.Munmap(b); err != nil && first == nil {
			first = err
		}
	}
	m.regions, m.mapped, m.maps = nil, false, nil
	return first
}

// Regions returns the RAM regions in address order.
func (m *Memory) Regions() []Region { return m.regions }

// Resident is how much of the RAM the host has backed with pages, i.e.
// what the guest has touched (mincore(2) over each region; regions must be
// mmap'd, as Allocate makes them).
func (m *Memory) Resident() (uint64, error) {
	var n uint64
	page := uint64(unix.Getpagesize())
	for _, r := range m.regions {
		if len(r.Data) == 0 {
			continue
		}
		vec := make([]byte, (uint64(len(r.Data))+page-1)/page)
		if err := mincore(r.Data, vec); err != nil {
			return 0, fmt.Errorf("mem: mincore: %w", err)
		}
		for _, v := range vec {
			n += uint64(v & 1)
		}
	}
	return n * page, nil
}

// Size is the total amount of RAM.
func (m *Memory) Size() uint64 {
	var n uint64
	for _, r := range m.regions {
		n += uint64(len(r.Data))
	}
	return n
}

// Slice returns the n bytes at addr as a slice aliasing guest RAM. The range
// must lie inside one region; n may be zero (addr must still be in RAM or
// at a region's end).
func (m *Memory) Slice(addr, n uint64) ([]byte, error) {
	for i := range m.regions {
		r := &m.regions[i]
		if addr < r.Base {
			break
		}
		off := addr - r.Base
		size := uint64(len(r.Data))
		if off > size {
			continue
		}
		if n > size-off {
			break
		}
		return r.Data[off : off+n : off+n], nil
	}
	return nil, &AccessError{Addr: addr, Len: n}
}

// Contains reports whether [addr, addr+n) is wholly inside one RAM region.
func (m *Memory) Contains(addr, n uint64) bool {
	_, err := m.Slice(addr, n)
	return err == nil
}

// ReadAt copies len(p) bytes at addr into p.
func (m *Memory) ReadAt(p []byte, addr uint64) error {
	s, err := m.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, s)
	return nil
}

// WriteAt copies p into guest memory at addr.
func (m *Memory) WriteAt(p []byte, addr uint64) error {
	s, err := m.Slice(addr, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(s, p)
	return nil
}

// Zero clears n bytes at addr.
func (m *Memory) Zero(addr, n uint64) error {
	s, err := m.Slice(addr, n)
	if err != nil {
		return err
	}
	clear(s)
	return nil
}

// Uint16 reads a little-endian 16-bit value.
func (m *Memory) Uint16(addr uint64) (uint16, error) {
	s, err := m.Slice(addr, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(s), nil
}

// Uint32 reads a little-endian 32-bit value.
func (m *Memory) Uint32(addr uint64) (uint32, error) {
	s, err := m.Slice(addr, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(s), nil
}

// Uint64 reads a little-endian 64-bit value.
func (m *Memory) Uint64(addr uint64) (uint64, error) {
	s, err := m.Slice(addr, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(s), nil
}

// PutUint16 writes a little-endian 16-bit value.
func (m *Memory) PutUint16(addr uint64, v uint16) error {
	s, err := m.Slice(addr, 2)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(s, v)
	return nil
}

// PutUint32 writes a little-endian 32-bit value.
func (m *Memory) PutUint32(addr uint64, v uint32) error {
	s, err := m.Slice(addr, 4)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(s, v)
	return nil
}

// PutUint64 writes a little-endian 64-bit value.
func (m *Memory) PutUint64(addr uint64, v uint64) error {
	s, err := m.Slice(addr, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(s, v)
	return nil
}
