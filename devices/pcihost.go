package devices

import (
	"encoding/binary"
	"sync"
)

// PCI configuration mechanism #1 (PCI Local Bus Specification 3.0, 3.2.2.3.2):
// a 32-bit address register at 0xCF8 selects bus/device/function/register
// and 0xCFC-0xCFF is the data window. Device 0 on bus 0 is the host bridge;
// every other slot is empty and reads as all ones.
const (
	PCIConfigAddrPort = 0xcf8
	PCIConfigPorts    = 8 // 0xCF8-0xCFF

	pciAddrOff   = 0
	pciDataOff   = 4
	pciEnableBit = 1 << 31

	pciVendorIntel  = 0x8086 // Intel, as QEMU's and kvmtool's host bridges
	pciDeviceHost   = 0x1237 // 440FX host bridge ID, known to every guest
	pciClassBridge  = 0x06
	pciSubclassHost = 0x00
	pciHeaderType0  = 0x00
	pciConfigSpace  = 256
)

// PCIHost is the configuration-space access mechanism with a host bridge
// at 00:00.0.
type PCIHost struct {
	mu     sync.Mutex
	addr   uint32
	bridge [pciConfigSpace]byte
}

// NewPCIHost returns the host bridge.
func NewPCIHost() *PCIHost {
	h := &PCIHost{}
	le := binary.LittleEndian
	le.PutUint16(h.bridge[0x00:], pciVendorIntel)
	le.PutUint16(h.bridge[0x02:], pciDeviceHost)
	h.bridge[0x0a] = pciSubclassHost
	h.bridge[0x0b] = pciClassBridge
	h.bridge[0x0e] = pciHeaderType0
	return h
}

// configOffset decodes the selected device's register offset; ok is false
// for disabled cycles and empty slots.
func (h *PCIHost) configOffset() (uint32, bool) {
	if h.addr&pciEnableBit == 0 {
		return 0, false
	}
	bus := h.addr >> 16 & 0xff
	devfn := h.addr >> 8 & 0xff
	if bus != 0 || devfn != 0 {
		return 0, false
	}
	return h.addr & 0xfc, true
}

// Read serves the address and data ports.
func (h *PCIHost) Read(off uint64, data []byte) {
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
		return
	}
	reg, ok := h.configOffset()
	for i := range data {
		o := reg + uint32(off-pciDataOff) + uint32(i)
		if !ok || o >= pciConfigSpace {
			data[i] = 0xff
			continue
		}
		data[i] = h.bridge[o]
	}
}

// Write serves the address and data ports. The host bridge's registers are
// read-only.
func (h *PCIHost) Write(off uint64, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off == pciAddrOff && len(data) == 4 {
		h.addr = binary.LittleEndian.Uint32(data)
	}
}
