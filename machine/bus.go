package machine

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// Device serves guest accesses to its address range. off is the offset from
// the range's base; len(data) is the access width (1, 2, 4 or 8). A read
// fills data; a write consumes it. Devices serialize their own state.
type Device interface {
	Read(off uint64, data []byte)
	Write(off uint64, data []byte)
}

// Bus errors.
var (
	ErrOverlap    = errors.New("bus range overlaps another")
	ErrZeroLength = errors.New("bus range has zero length")
)

type busRange struct {
	base, size uint64
	name       string
	dev        Device
}

// maxUnhandledLogged bounds the set of unhandled addresses remembered for
// log-once, so a guest scanning addresses cannot grow it without end.
const maxUnhandledLogged = 256

// Bus maps address ranges (I/O ports or MMIO addresses) to devices. Ranges
// are registered before the vCPUs start; lookups take no lock.
type Bus struct {
	kind   string
	ranges []busRange // sorted by base, non-overlapping
	// fill is the byte an unhandled read returns: 0xff for the ISA
	// port space (a floating bus), 0 for MMIO.
	fill uint8

	logMu  sync.Mutex
	logged map[uint64]struct{}
}

// NewBus returns an empty bus; kind names it in log messages.
func NewBus(kind string, fill uint8) *Bus {
	return &Bus{kind: kind, fill: fill, logged: make(map[uint64]struct{})}
}

// Insert maps [base, base+size) to dev.
func (b *Bus) Insert(base, size uint64, name string, dev Device) error {
	if size == 0 {
		return fmt.Errorf("%s %s at %#x: %w", b.kind, name, base, ErrZeroLength)
	}
	if base+size < base {
		return fmt.Errorf("%s %s at %#x+%#x wraps: %w", b.kind, name, base, size, ErrOverlap)
	}
	i := sort.Search(len(b.ranges), func(i int) bool { return b.ranges[i].base >= base })
	if i > 0 {
		if p := b.ranges[i-1]; p.base+p.size > base {
			return fmt.Errorf("%s %s at %#x overlaps %s at %#x: %w", b.kind, name, base, p.name, p.base, ErrOverlap)
		}
	}
	if i < len(b.ranges) {
		if n := b.ranges[i]; base+size > n.base {
			return fmt.Errorf("%s %s at %#x overlaps %s at %#x: %w", b.kind, name, base, n.name, n.base, ErrOverlap)
		}
	}
	b.ranges = append(b.ranges, busRange{})
	copy(b.ranges[i+1:], b.ranges[i:])
	b.ranges[i] = busRange{base: base, size: size, name: name, dev: dev}
	return nil
}

// find returns the range holding the whole access [addr, addr+n).
func (b *Bus) find(addr, n uint64) *busRange {
	i := sort.Search(len(b.ranges), func(i int) bool { return b.ranges[i].base > addr })
	if i == 0 {
		return nil
	}
	r := &b.ranges[i-1]
	if addr-r.base >= r.size || n > r.size-(addr-r.base) {
		return nil
	}
	return r
}

// Read dispatches a read of len(data) bytes at addr. An access no device
// claims reads as the bus's fill byte and is logged once.
func (b *Bus) Read(addr uint64, data []byte) bool {
	if r := b.find(addr, uint64(len(data))); r != nil {
		r.dev.Read(addr-r.base, data)
		return true
	}
	for i := range data {
		data[i] = b.fill
	}
	b.unhandled("read", addr, len(data))
	return false
}

// Write dispatches a write at addr. An unclaimed write is dropped and
// logged once.
func (b *Bus) Write(addr uint64, data []byte) bool {
	if r := b.find(addr, uint64(len(data))); r != nil {
		r.dev.Write(addr-r.base, data)
		return true
	}
	b.unhandled("write", addr, len(data))
	return false
}

func (b *Bus) unhandled(op string, addr uint64, n int) {
	if !slog.Default().Enabled(nil, slog.LevelDebug) {
		return
	}
	b.logMu.Lock()
	_, seen := b.logged[addr]
	if !seen && len(b.logged) < maxUnhandledLogged {
		b.logged[addr] = struct{}{}
	}
	b.logMu.Unlock()
	if !seen {
		slog.Debug("unhandled guest access", "bus", b.kind, "op", op, "addr", fmt.Sprintf("%#x", addr), "size", n)
	}
}
