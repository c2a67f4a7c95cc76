// Package virtio owns the virtio device model (Virtual I/O Device
// specification 1.2): split virtqueues over guest memory, independent of
// any transport; the virtio-PCI modern transport with MSI-X; and the
// devices (one file each). Every guest-provided address, length and index
// is checked; a malformed queue makes the device ask for a reset, never a
// panic or an access outside guest RAM.
package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/govm/govm/mem"
)

// Split virtqueue layout (virtio 1.2, 2.7).
const (
	descSize        = 16
	descFlagNext    = 1
	descFlagWrite   = 2
	descFlagIndirct = 4

	availHeader = 4 // flags u16, idx u16
	usedHeader  = 4
	usedElem    = 8 // id u32, len u32

	// MaxQueueSize is the largest queue size govm offers (2.7: at most 32768).
	MaxQueueSize = 32768
	// maxIndirect bounds one indirect table's descriptors.
	maxIndirect = 1024
)

// Errors a queue reports; any of them means the driver broke the rules and
// the device needs a reset.
var (
	ErrQueueConfig   = errors.New("virtqueue: bad configuration")
	ErrAvailOverrun  = errors.New("virtqueue: driver made more buffers available than the queue holds")
	ErrBadHead       = errors.New("virtqueue: descriptor index out of range")
	ErrChainTooLong  = errors.New("virtqueue: descriptor chain longer than the queue (a loop?)")
	ErrBadIndirect   = errors.New("virtqueue: bad indirect descriptor")
	ErrBadDescriptor = errors.New("virtqueue: descriptor outside guest RAM")
)

// Desc is one buffer of a chain.
type Desc struct {
	Addr  uint64
	Len   uint32
	Write bool // device writes (a driver "in" buffer)
}

// Queue is a split virtqueue as the driver configured it.
type Queue struct {
	Size     uint16
	Desc     uint64 // descriptor table
	Avail    uint64 // driver area
	Used     uint64 // device area
	EventIdx bool   // VIRTIO_F_EVENT_IDX negotiated
	// Observe, if set, sees each chain Pop returns (SeedRecorder).
	Observe func(m *mem.Memory, chain []Desc)

	lastAvail uint16
	usedIdx   uint16
	chain     []Desc
}

// Validate checks the configuration once, when the driver enables the
// queue: size a power of two no larger than max, rings aligned (2.7) and
// inside guest RAM, 32-bit index words aligned for atomic access.
func (q *Queue) Validate(m *mem.Memory, max uint16) error {
	if q.Size == 0 || q.Size > max || q.Size&(q.Size-1) != 0 {
		return fmt.Errorf("%w: size %d (max %d, power of two)", ErrQueueConfig, q.Size, max)
	}
	n := uint64(q.Size)
	if q.Desc%16 != 0 || q.Avail%4 != 0 || q.Used%4 != 0 {
		return fmt.Errorf("%w: rings at %#x/%#x/%#x misaligned", ErrQueueConfig, q.Desc, q.Avail, q.Used)
	}
	for _, r := range []struct{ addr, len uint64 }{
		{q.Desc, n * descSize},
		{q.Avail, availHeader + 2*n + 2},
		{q.Used, usedHeader + usedElem*n + 2},
	} {
		if !m.Contains(r.addr, r.len) {
			return fmt.Errorf("%w: ring [%#x, +%#x) outside RAM", ErrQueueConfig, r.addr, r.len)
		}
	}
	q.lastAvail, q.usedIdx = 0, 0
	if cap(q.chain) < int(q.Size)+maxIndirect {
		q.chain = make([]Desc, 0, int(q.Size)+maxIndirect)
	}
	return nil
}

// availIdx reads the driver's avail index.
func (q *Queue) availIdx(m *mem.Memory) (uint16, error) {
	w, err := m.LoadUint32(q.Avail)
	return uint16(w >> 16), err
}

// Pop returns the next available chain: its head index and buffers. The
// slice is reused by the next Pop. ok is false when the ring is empty.
func (q *Queue) Pop(m *mem.Memory) (head uint16, chain []Desc, ok bool, err error) {
	idx, err := q.availIdx(m)
	if err != nil {
		return 0, nil, false, err
	}
	if idx == q.lastAvail {
		return 0, nil, false, nil
	}
	if idx-q.lastAvail > q.Size {
		return 0, nil, false, fmt.Errorf("%w: avail idx %d, last seen %d, size %d", ErrAvailOverrun, idx, q.lastAvail, q.Size)
	}
	slot := q.Avail + availHeader + 2*uint64(q.lastAvail%q.Size)
	h, err := m.Uint16(slot)
	if err != nil {
		return 0, nil, false, err
	}
	if h >= q.Size {
		return 0, nil, false, fmt.Errorf("%w: head %d, size %d", ErrBadHead, h, q.Size)
	}
	q.lastAvail++
	chain, err = q.walk(m, h)
	if err != nil {
		return h, nil, true, err
	}
	if q.Observe != nil {
		q.Observe(m, chain)
	}
	return h, chain, true, nil
}

// Unpop gives back the last n chains popped and not yet returned with
// PushUsed: the next Pop returns them again.
func (q *Queue) Unpop(n int) { q.lastAvail -= uint16(n) }

// readDesc reads descriptor i of the table at base.
func readDesc(m *mem.Memory, base uint64, i uint16) (addr uint64, length uint32, flags, next uint16, err error) {
	b, err := m.Slice(base+uint64(i)*descSize, descSize)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	le := binary.LittleEndian
	return le.Uint64(b), le.Uint32(b[8:]), le.Uint16(b[12:]), le.Uint16(b[14:]), nil
}

func (q *Queue) walk(m *mem.Memory, head uint16) ([]Desc, error) {
	chain := q.chain[:0]
	table, limit := q.Desc, q.Size
	i := head
	indirect := false
	for n := uint32(0); ; n++ {
		if n >= uint32(limit) {
			return nil, fmt.Errorf("%w: head %d", ErrChainTooLong, head)
		}
		addr, length, flags, next, err := readDesc(m, table, i)
		if err != nil {
			return nil, err
		}
		if flags&descFlagIndirct != 0 {
			// 2.7.5.3: one level only, not chained, a whole number of
			// descriptors.
			if indirect || flags&descFlagNext != 0 || length == 0 || length%descSize != 0 || length/descSize > maxIndirect {
				return nil, fmt.Errorf("%w: at %#x, %d bytes", ErrBadIndirect, addr, length)
			}
			if !m.Contains(addr, uint64(length)) {
				return nil, fmt.Errorf("%w: indirect table [%#x, +%#x)", ErrBadDescriptor, addr, length)
			}
			indirect = true
			table, limit, i, n = addr, uint16(length/descSize), 0, ^uint32(0) // n wraps to 0
			continue
		}
		if !m.Contains(addr, uint64(length)) {
			return nil, fmt.Errorf("%w: [%#x, +%#x)", ErrBadDescriptor, addr, length)
		}
		chain = append(chain, Desc{Addr: addr, Len: length, Write: flags&descFlagWrite != 0})
		if flags&descFlagNext == 0 {
			return chain, nil
		}
		if next >= limit {
			return nil, fmt.Errorf("%w: next %d, table of %d", ErrBadHead, next, limit)
		}
		i = next
	}
}

// PushUsed returns a chain to the driver with the number of bytes the
// device wrote: the element first, then the index, so the driver never
// sees an index before its element.
func (q *Queue) PushUsed(m *mem.Memory, head uint16, written uint32) error {
	elem := q.Used + usedHeader + usedElem*uint64(q.usedIdx%q.Size)
	b, err := m.Slice(elem, usedElem)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b, uint32(head))
	binary.LittleEndian.PutUint32(b[4:], written)
	q.usedIdx++
	w, err := m.LoadUint32(q.Used)
	if err != nil {
		return err
	}
	return m.StoreUint32(q.Used, w&0xffff|uint32(q.usedIdx)<<16)
}

// NeedsInterrupt reports whether the driver wants an interrupt now that
// the used index moved from old to the current value (2.7.10 with
// VIRTIO_F_EVENT_IDX, else the NO_INTERRUPT flag).
func (q *Queue) NeedsInterrupt(m *mem.Memory, old uint16) bool {
	if q.EventIdx {
		ev, err := m.Uint16(q.Avail + availHeader + 2*uint64(q.Size))
		if err != nil {
			return true
		}
		return q.usedIdx-ev-1 < q.usedIdx-old
	}
	w, err := m.LoadUint32(q.Avail)
	return err != nil || w&1 == 0 // VIRTQ_AVAIL_F_NO_INTERRUPT
}

// UsedIdx is the device's used index.
func (q *Queue) UsedIdx() uint16 { return q.usedIdx }

// SetAvailEvent asks the driver (with EVENT_IDX) to notify when it makes
// buffer lastAvail available: that is, on the next new buffer.
//
// The store is fenced before the caller's next look at the ring
// (HasAvailable), so a buffer the driver adds meanwhile is either seen
// there or notified.
func (q *Queue) SetAvailEvent(m *mem.Memory) {
	if q.EventIdx {
		_ = m.StoreUint16(q.availEventAddr(), q.lastAvail) // fenced
	}
}

func (q *Queue) availEventAddr() uint64 { return q.Used + usedHeader + usedElem*uint64(q.Size) }

// ArmNextAvail asks the driver (with EVENT_IDX) to notify when it adds
// its next buffer, counted from the buffers available now even if the
// device has not popped them (a device waiting for enough buffers to
// hold one frame). It reports whether buffers were added meanwhile, in
// which case the caller looks again instead of waiting.
func (q *Queue) ArmNextAvail(m *mem.Memory) bool {
	idx, err := q.availIdx(m)
	if err != nil {
		return false
	}
	if q.EventIdx {
		_ = m.StoreUint16(q.availEventAddr(), idx) // fenced
	}
	now, err := q.availIdx(m)
	return err == nil && now != idx
}

// HasAvailable reports whether the driver has posted buffers not yet popped.
func (q *Queue) HasAvailable(m *mem.Memory) bool {
	idx, err := q.availIdx(m)
	return err == nil && idx != q.lastAvail
}

// ServeAvailable serves every chain the driver has made available on q,
// in order: serve returns the bytes it wrote to the chain (the used
// length). It re-checks the ring after publishing avail_event, so a
// chain made available meanwhile is not left behind, and interrupts the
// driver once, for queue qi, if it asked to be. An error from the ring or
// from serve means the driver broke the rules.
func (q *Queue) ServeAvailable(m *mem.Memory, qi int, interrupt func(int), serve func(chain []Desc) (uint32, error)) error {
	old := q.UsedIdx()
	for {
		for {
			head, chain, ok, err := q.Pop(m)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			n, err := serve(chain)
			if err != nil {
				return err
			}
			if err := q.PushUsed(m, head, n); err != nil {
				return err
			}
		}
		q.SetAvailEvent(m)
		if !q.HasAvailable(m) {
			break
		}
	}
	if q.UsedIdx() != old && q.NeedsInterrupt(m, old) {
		interrupt(qi)
	}
	return nil
}
