// Package bus maps guest address ranges (I/O ports, MMIO) to the devices
// that serve them, as one type both the machine and the virtio-PCI
// transport use: the machine dispatches exits through it, the transport
// places its BAR on it.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
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
	kind string
	// ranges is sorted by base and non-overlapping. It is replaced, never
	// changed in place, so lookups from vCPU threads take no lock while a
	// device (a PCI BAR) moves.
	ranges atomic.Pointer[[]busRange]
	mu     sync.Mutex // serializes Insert and Remove
	// fill is the byte an unhandled read returns: 0xff for the ISA
	// port space (a floating bus), 0 for MMIO.
	fill uint8

	logMu  sync.Mutex
	logged map[uint64]struct{}
}

// New returns an empty bus; kind names it in log messages.
func New(kind string, fill uint8) *Bus {
	b := &Bus{kind: kind, fill: fill, logged: make(map[uint64]struct{})}
	b.ranges.Store(&[]busRange{})
	return b
}

// Insert maps [base, base+size) to dev.
func (b *Bus) Insert(base, size uint64, name string, dev Device) error {
	if size == 0 {
		return fmt.Errorf("%s %s at %#x: %w", b.kind, name, base, ErrZeroLength)
	}
	if base+size < base {
		return fmt.Errorf("%s %s at %#x+%#x wraps: %w", b.kind, name, base, size, ErrOverlap)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.ranges.Load()
	i := sort.Search(len(old), func(i int) bool { return old[i].base >= base })
	if i > 0 {
		if p := old[i-1]; p.base+p.size > base {
			return fmt.Errorf("%s %s at %#x overlaps %s at %#x: %w", b.kind, name, base, p.name, p.base, ErrOverlap)
		}
	}
	if i < len(old) {
		if n := old[i]; base+size > n.base {
			return fmt.Errorf("%s %s at %#x overlaps %s at %#x: %w", b.kind, name, base, n.name, n.base, ErrOverlap)
		}
	}
	rs := make([]busRange, 0, len(old)+1)
	rs = append(rs, old[:i]...)
	rs = append(rs, busRange{base: base, size: size, name: name, dev: dev})
	rs = append(rs, old[i:]...)
	b.ranges.Store(&rs)
	return nil
}

// Remove unmaps the range that starts at base and belongs to dev.
func (b *Bus) Remove(base uint64, dev Device) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.ranges.Load()
	for i, r := range old {
		if r.base == base && r.dev == dev {
			rs := make([]busRange, 0, len(old)-1)
			rs = append(rs, old[:i]...)
			rs = append(rs, old[i+1:]...)
			b.ranges.Store(&rs)
			return true
		}
	}
	return false
}

// find returns the range holding the whole access [addr, addr+n).
func (b *Bus) find(addr, n uint64) *busRange {
	rs := *b.ranges.Load()
	i := sort.Search(len(rs), func(i int) bool { return rs[i].base > addr })
	if i == 0 {
		return nil
	}
	r := &rs[i-1]
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
	if !slog.Default().Enabled(context.Background(), slog.LevelDebug) {
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
