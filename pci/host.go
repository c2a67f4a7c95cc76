package pci

import (
	"encoding/binary"
	"sync"
)

// PCI configuration mechanism #1 (PCI Local Bus Specification 3.0, 3.2.2.3.2):
// a 32-bit address register at 0xCF8 selects bus/device/function/register
// and 0xCFC-0xCFF is the data window. Device 0 on bus 0 is the host bridge;
// every other slot is empty and reads as all ones.
const (
	ConfigAddrPort = 0xcf8
	ConfigPorts    = 8 // 0xCF8-0xCFF

	pciAddrOff   = 0
	pciDataOff   = 4
	pciEnableBit = 1 << 31

	pciVendorIntel  = 0x8086 // Intel, as QEMU's and kvmtool's host bridges
	pciDeviceHost   = 0x1237 // 440FX host bridge ID, known to every guest
	pciClassBridge  = 0x06
	pciSubclassHost = 0x00
	pciHeaderType0  = 0x00
)

// Function is a PCI function's configuration space (a *Config).
type Function interface {
	Read(off int, data []byte)
	Write(off int, data []byte)
}

// Slots is the number of device slots on bus 0.
const Slots = 32

// Host is the configuration-space access mechanism with a host bridge
// at 00:00.0 and single-function devices in the other slots of bus 0.
type Host struct {
	mu     sync.Mutex
	addr   uint32
	bridge [ConfigSize]byte
	slots  [Slots]Function
}

// Attach places a function in slot (1-31); call before the guest runs.
func (h *Host) Attach(slot int, f Function) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if slot < 1 || slot >= Slots || h.slots[slot] != nil {
		return false
	}
	h.slots[slot] = f
	return true
}

// NewHost returns the host bridge.
func NewHost() *Host {
	h := &Host{}
	le := binary.LittleEndian
	le.PutUint16(h.bridge[0x00:], pciVendorIntel)
	le.PutUint16(h.bridge[0x02:], pciDeviceHost)
	h.bridge[0x0a] = pciSubclassHost
	h.bridge[0x0b] = pciClassBridge
	h.bridge[0x0e] = pciHeaderType0
	return h
}

// target decodes the selected function and register offset; slot is -1
// for disabled cycles and absent functions, 0 for the host bridge.
func (h *Host) target() (slot int, reg uint32) {
	if h.addr&pciEnableBit == 0 {
		return -1, 0
	}
	bus := h.addr >> 16 & 0xff
	dev := int(h.addr >> 11 & 0x1f)
	fn := h.addr >> 8 & 0x7
	if bus != 0 || fn != 0 || (dev != 0 && h.slots[dev] == nil) {
		return -1, 0
	}
	return dev, h.addr & 0xfc
}

// Read serves the address and data ports.
func (h *Host) Read(off uint64, data []byte) {
	// A device function serializes itself; the host lock is not held
	// while it runs.
	if f, reg := h.readLocked(off, data); f != nil {
		f.Read(int(reg), data)
	}
}

// readLocked serves reads of the address register, the host bridge and
// empty slots; for a device function it returns the function to call and
// the register offset.
func (h *Host) readLocked(off uint64, data []byte) (Function, uint32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off < pciDataOff {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], h.addr)
		for i := range data {
			if o := off + uint64(i); o < 4 {
				data[i] = b[o]
			}
		}
		return nil, 0
	}
	slot, reg := h.target()
	o := reg + uint32(off-pciDataOff)
	if slot > 0 {
		return h.slots[slot], o
	}
	for i := range data {
		switch p := o + uint32(i); {
		case slot == 0 && p < ConfigSize:
			data[i] = h.bridge[p]
		default:
			data[i] = 0xff
		}
	}
	return nil, 0
}

// Write serves the address and data ports. The host bridge's registers are
// read-only.
func (h *Host) Write(off uint64, data []byte) {
	h.mu.Lock()
	if off == pciAddrOff && len(data) == 4 {
		h.addr = binary.LittleEndian.Uint32(data)
		h.mu.Unlock()
		return
	}
	slot, reg := h.target()
	var f Function
	if slot > 0 && off >= pciDataOff {
		f = h.slots[slot]
	}
	h.mu.Unlock()
	if f != nil {
		f.Write(int(reg+uint32(off-pciDataOff)), data)
	}
}
