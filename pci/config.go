// Package pci owns PCI configuration space (PCI Local Bus Specification
// 3.0, chapter 6): a type-0 header with BAR sizing, the capability list,
// and write masks so a guest changes only the bits it may; and the host
// bridge with configuration mechanism #1 (host.go), which routes the
// guest's accesses to each slot's space. Devices build their config space
// with it; the virtio-PCI transport is package virtio, and the routing of
// each slot's INTx line to the I/O APIC is the machine's (machine/intx.go).
package pci

import (
	"encoding/binary"
	"sync"
)

// Header offsets and bits (PCI 3.0, 6.1, 6.2).
const (
	VendorID      = 0x00
	DeviceID      = 0x02
	Command       = 0x04
	Status        = 0x06
	RevisionID    = 0x08
	ClassProg     = 0x09
	Subclass      = 0x0a
	Class         = 0x0b
	HeaderType    = 0x0e
	BAR0          = 0x10
	SubsysVendor  = 0x2c
	SubsysID      = 0x2e
	CapPtr        = 0x34
	InterruptLine = 0x3c
	InterruptPin  = 0x3d

	CommandIO      = 1 << 0
	CommandMemory  = 1 << 1
	CommandMaster  = 1 << 2
	CommandIntxOff = 1 << 10

	StatusIntx    = 1 << 3 // the function's INTx# is asserted
	StatusCapList = 1 << 4

	barMem64 = 0x4 // memory BAR, 64-bit type

	// ConfigSize is the conventional configuration space.
	ConfigSize = 256
	firstCap   = 0x40
)

// Capability IDs.
const (
	CapMSIX   = 0x11
	CapVendor = 0x09
)

// Config is one function's configuration space. Writes are masked;
// OnWrite, if set, sees every write after it is applied.
type Config struct {
	mu      sync.Mutex
	data    [ConfigSize]byte
	wmask   [ConfigSize]byte
	nextCap int
	lastCap int
	barSize [6]uint64
	OnWrite func(off int, data []byte)
}

// NewConfig returns a type-0 header for vendor:device of the given class.
func NewConfig(vendor, device uint16, class, subclass, progIF uint8) *Config {
	c := &Config{nextCap: firstCap}
	le := binary.LittleEndian
	le.PutUint16(c.data[VendorID:], vendor)
	le.PutUint16(c.data[DeviceID:], device)
	c.data[Class], c.data[Subclass], c.data[ClassProg] = class, subclass, progIF
	c.data[HeaderType] = 0
	// The guest may set I/O, memory, bus master and INTx disable.
	le.PutUint16(c.wmask[Command:], CommandIO|CommandMemory|CommandMaster|CommandIntxOff)
	c.wmask[InterruptLine] = 0xff
	return c
}

// SetSubsystem sets the subsystem vendor and ID.
func (c *Config) SetSubsystem(vendor, id uint16) {
	binary.LittleEndian.PutUint16(c.data[SubsysVendor:], vendor)
	binary.LittleEndian.PutUint16(c.data[SubsysID:], id)
}

// SetByte sets a read-only byte while the device is built (revision,
// programming interface).
func (c *Config) SetByte(off int, v uint8) { c.data[off] = v }

// SetInterruptPin sets the INTx pin (1 = INTA).
func (c *Config) SetInterruptPin(pin uint8) { c.data[InterruptPin] = pin }

// AddMem64BAR declares BAR i (and i+1, its upper half) as a 64-bit memory
// BAR of size bytes (a power of two, at least 16), placed at addr.
func (c *Config) AddMem64BAR(i int, size, addr uint64) {
	c.barSize[i] = size
	le := binary.LittleEndian
	le.PutUint32(c.data[BAR0+4*i:], uint32(addr)|barMem64)
	le.PutUint32(c.data[BAR0+4*i+4:], uint32(addr>>32))
	le.PutUint32(c.wmask[BAR0+4*i:], ^uint32(size-1)&^0xf)
	le.PutUint32(c.wmask[BAR0+4*i+4:], ^uint32((size-1)>>32))
}

// BARAddr returns the address BAR i (64-bit) holds now.
func (c *Config) BARAddr(i int) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.barAddr(i)
}

func (c *Config) barAddr(i int) uint64 {
	le := binary.LittleEndian
	return uint64(le.Uint32(c.data[BAR0+4*i:])&^0xf) | uint64(le.Uint32(c.data[BAR0+4*i+4:]))<<32
}

// MemoryEnabled reports the command register's memory space enable.
func (c *Config) MemoryEnabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return binary.LittleEndian.Uint16(c.data[Command:])&CommandMemory != 0
}

// AddCapability appends a capability with the given body (after the ID and
// next bytes) and returns its offset. wmask marks body bytes the guest may
// write (nil: read-only).
func (c *Config) AddCapability(id uint8, body, wmask []byte) int {
	off := c.nextCap
	c.data[off] = id
	copy(c.data[off+2:], body)
	if wmask != nil {
		copy(c.wmask[off+2:], wmask)
	}
	if c.lastCap == 0 {
		c.data[CapPtr] = uint8(off)
		binary.LittleEndian.PutUint16(c.data[Status:], StatusCapList)
	} else {
		c.data[c.lastCap+1] = uint8(off)
	}
	c.lastCap = off
	c.nextCap = (off + 2 + len(body) + 3) &^ 3
	return off
}

// Read copies config bytes at off into data; bytes past the end read as
// all ones.
func (c *Config) Read(off int, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range data {
		if o := off + i; o >= 0 && o < ConfigSize {
			data[i] = c.data[o]
		} else {
			data[i] = 0xff
		}
	}
}

// Write applies a guest write through the write mask.
func (c *Config) Write(off int, data []byte) {
	c.mu.Lock()
	for i, b := range data {
		o := off + i
		if o < 0 || o >= ConfigSize {
			continue
		}
		c.data[o] = c.data[o]&^c.wmask[o] | b&c.wmask[o]
	}
	hook := c.OnWrite
	c.mu.Unlock()
	if hook != nil {
		hook(off, data)
	}
}

// SetIntxStatus sets or clears the read-only Interrupt Status bit.
func (c *Config) SetIntxStatus(asserted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if asserted {
		c.data[Status] |= StatusIntx
	} else {
		c.data[Status] &^= StatusIntx
	}
}

// Uint16 reads a config word.
func (c *Config) Uint16(off int) uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return binary.LittleEndian.Uint16(c.data[off:])
}
