package machine

import (
	"fmt"

	"github.com/govm/govm/virtio"
)

// PCI memory window for device BARs, inside the 32-bit hole below the I/O
// APIC; the DSDT's PCI0 announces it.
const (
	PCIMMIOBase = 0xc000_0000
	PCIMMIOEnd  = 0xfec0_0000
)

// Disk is a virtio-blk disk backed by an image file.
type Disk struct {
	Path     string
	ReadOnly bool
	Serial   string // default: the file name
}

// MapMMIO places a device range on the MMIO bus (virtio.Platform).
func (m *Machine) MapMMIO(base, size uint64, name string, dev virtio.MMIODevice) error {
	if base < PCIMMIOBase || base+size > PCIMMIOEnd || base+size < base {
		return fmt.Errorf("%s at %#x+%#x is outside the PCI window", name, base, size)
	}
	return m.mmio.Insert(base, size, name, dev)
}

// UnmapMMIO removes it again.
func (m *Machine) UnmapMMIO(base uint64, dev virtio.MMIODevice) { m.mmio.Remove(base, dev) }

// IOEventFD binds an eventfd to guest writes at an MMIO address.
func (m *Machine) IOEventFD(fd int, addr uint64, length uint32, deassign bool) error {
	return m.vm.IOEventFD(fd, addr, length, false, false, 0, deassign)
}

// SignalMSI injects an MSI.
func (m *Machine) SignalMSI(addr uint64, data uint32) error { return m.vm.SignalMSI(addr, data) }

// addDisks opens each disk and places it on the PCI bus, slots 1 and up.
func (m *Machine) addDisks() error {
	for i, d := range m.cfg.Disks {
		backend, size, serial, err := virtio.OpenDisk(d.Path, d.ReadOnly)
		if err != nil {
			return fmt.Errorf("--disk %s: %w", d.Path, err)
		}
		m.closers = append(m.closers, backend.Close)
		if d.Serial != "" {
			serial = d.Serial
		}
		blk, err := virtio.NewBlk(backend, size, virtio.BlkOptions{ReadOnly: d.ReadOnly, Serial: serial, Discard: true})
		if err != nil {
			return fmt.Errorf("--disk %s: %w", d.Path, err)
		}
		name := fmt.Sprintf("virtio-blk %d", i)
		bar := uint64(PCIMMIOBase) + uint64(i)*virtio.BARSize
		pd := virtio.NewPCIDevice(name, blk, m.mem, m, bar)
		if !m.pciHost.Attach(i+1, pd.Cfg) {
			return fmt.Errorf("--disk %s: no free PCI slot", d.Path)
		}
		m.closers = append([]func() error{func() error { pd.Close(); return nil }}, m.closers...)
	}
	return nil
}
