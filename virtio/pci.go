package virtio

import (
	"encoding/binary"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/govm/govm/bus"
	"github.com/govm/govm/mem"
	"github.com/govm/govm/pci"
)

// Platform is what the PCI transport needs from the VM, one per device:
// placing its BAR on the MMIO bus, binding queue notifications to
// eventfds in the kernel, delivering MSIs and INTx, and starting the
// threads that serve its queues.
type Platform interface {
	MapMMIO(base, size uint64, name string, dev bus.Device) error
	UnmapMMIO(base uint64, dev bus.Device)
	IOEventFD(fd int, addr uint64, length uint32, deassign bool) error
	// NewMSIRoute gives an MSI that is cheap to send (an irqfd); where
	// the platform has none, SignalMSI sends each message.
	NewMSIRoute() (MSIRoute, error)
	SignalMSI(addr uint64, data uint32) error
	// SetINTx asserts or deasserts the device's share of a level-
	// triggered interrupt line (several devices may drive one GSI).
	SetINTx(gsi uint32, asserted bool)
	// StartWorker runs serve on a new goroutine locked to an OS thread
	// of its own, which the platform names and schedules as it decides
	// for queue q's worker of a device with queues queues.
	StartWorker(q, queues int, serve func())
}

// MSIRoute is one MSI-X vector's path to the guest: Set (re)targets it at
// a message, Fire sends it.
type MSIRoute interface {
	Set(addr uint64, data uint32) error
	Fire() error
	Close()
}

// Virtio PCI constants (virtio 1.2, 4.1).
const (
	pciVendorVirtio = 0x1af4
	pciDeviceBase   = 0x1040 // modern device ID = 0x1040 + type (4.1.2)
	pciRevision     = 1      // 4.1.2.1: non-transitional devices have revision 1 or more

	// virtio_pci_cap cfg_type values (4.1.4).
	capCommon = 1
	capNotify = 2
	capISR    = 3
	capDevice = 4

	// BAR0 layout: each structure the capabilities point at, on its own
	// page so a guest maps them separately.
	BARSize       = 0x8000
	offCommon     = 0x0000
	lenCommon     = 0x38 // struct virtio_pci_common_cfg (4.1.4.3)
	offISR        = 0x1000
	lenISR        = 1
	offDevice     = 0x2000
	lenDevice     = 0x1000
	offNotify     = 0x3000
	notifyMult    = 4 // notify_off_multiplier (4.1.4.4)
	offMSIXTable  = 0x4000
	offMSIXPBA    = 0x5000
	msixEntrySize = 16 // PCI 3.0, 6.8.2.6

	// PCI class codes (PCI Code and ID Assignment, 1.2 and 1.3).
	pciClassStorage, pciSubclassSCSI  = 0x01, 0x00
	pciClassNetwork, pciSubclassEther = 0x02, 0x00
	pciClassOther                     = 0xff
)

// pciQueue is one virtqueue's transport state.
type pciQueue struct {
	q        Queue
	size     uint16
	enabled  bool
	efd      int
	notifyAt uint64 // ioeventfd address registered, 0 if none
}

// phase is where the device is in its life (virtio 1.2, 3.1 and 2.4).
type phase uint8

const (
	phaseConfig    phase = iota // the driver sets it up; no workers run
	phaseLive                   // DRIVER_OK: workers serve the queues
	phaseResetting              // a reset waits for the workers to stop
)

// PCIDevice is a virtio device behind the modern virtio-PCI transport.
//
// Two locks: mu guards the configuration (common config registers, the
// status, the queues, the BAR mapping); irq guards interrupt delivery, so
// a device's worker raising an interrupt never waits for a register
// access or a reset in progress.
type PCIDevice struct {
	name  string
	dev   Device
	mem   *mem.Memory
	plat  Platform
	cfg   *pci.Config
	irq   *pciIRQ
	seeds *SeedRecorder // nil unless recording fuzz seeds

	mu          sync.Mutex
	phase       phase
	mapped      uint64 // BAR address mapped on the bus, 0 if none
	devFeatSel  uint32
	drvFeatSel  uint32
	drvFeatures uint64
	status      uint8
	configGen   uint8
	queueSel    uint16
	queues      []pciQueue
	stopFd      int // a Looper's stop eventfd while it runs, else -1

	stop     atomic.Bool // workers return at their next wake
	workers  sync.WaitGroup
	warnings atomic.Int32 // guest-caused warnings logged so far
}

// NewPCIDevice wraps dev in the transport, with its BAR at barAddr.
func NewPCIDevice(name string, dev Device, m *mem.Memory, plat Platform, barAddr uint64) *PCIDevice {
	n := dev.NumQueues()
	p := &PCIDevice{name: name, dev: dev, mem: m, plat: plat, queues: make([]pciQueue, n), stopFd: -1}
	p.resetQueues()
	class, sub := uint8(pciClassOther), uint8(0)
	switch dev.Type() {
	case TypeBlock:
		class, sub = pciClassStorage, pciSubclassSCSI
	case TypeNet:
		class, sub = pciClassNetwork, pciSubclassEther
	}
	c := pci.NewConfig(pciVendorVirtio, pciDeviceBase+dev.Type(), class, sub, 0)
	c.SetByte(pci.RevisionID, pciRevision)
	c.SetSubsystem(pciVendorVirtio, dev.Type())
	c.AddMem64BAR(0, BARSize, barAddr)
	c.AddCapability(pci.CapVendor, virtioCap(capCommon, offCommon, lenCommon, nil), nil)
	mult := binary.LittleEndian.AppendUint32(nil, notifyMult)
	c.AddCapability(pci.CapVendor, virtioCap(capNotify, offNotify, uint32(n*notifyMult), mult), nil)
	c.AddCapability(pci.CapVendor, virtioCap(capISR, offISR, lenISR, nil), nil)
	c.AddCapability(pci.CapVendor, virtioCap(capDevice, offDevice, lenDevice, nil), nil)
	msix := c.AddCapability(pci.CapMSIX, msixCap(n+1), msixCapWriteMask)
	p.irq = newPCIIRQ(c, msix, n, plat, p.warn)
	c.OnWrite = func(off int, data []byte) {
		p.remap()
		p.irq.configWritten(off, len(data))
	}
	p.cfg = c
	return p
}

// RecordSeeds makes the device's queues report the chains the driver
// makes available to r from the next activation on.
func (p *PCIDevice) RecordSeeds(r *SeedRecorder) {
	p.mu.Lock()
	p.seeds = r
	p.mu.Unlock()
}

// virtioCap is the body of a struct virtio_pci_cap (4.1.4) after the
// capability ID and next pointer, for a structure in BAR 0.
func virtioCap(typ uint8, off, length uint32, extra []byte) []byte {
	const header = 14 // cap_len .. length, after cap_vndr and cap_next
	b := make([]byte, header+len(extra))
	b[0] = byte(2 + header + len(extra)) // cap_len counts from the capability's start
	b[1] = typ
	b[2] = 0 // bar
	binary.LittleEndian.PutUint32(b[6:], off)
	binary.LittleEndian.PutUint32(b[10:], length)
	copy(b[14:], extra)
	return b
}

// Config is the device's PCI configuration space, for the host bridge.
func (p *PCIDevice) Config() *pci.Config { return p.cfg }

// remap follows the guest's BAR and memory-enable settings. Queue
// notifications are bound to their eventfds only while the device is live.
func (p *PCIDevice) remap() {
	want := uint64(0)
	if p.cfg.MemoryEnabled() {
		a := p.cfg.BARAddr(0)
		if a != 0 && a+BARSize > a && a&(BARSize-1) == 0 {
			want = a
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if want == p.mapped {
		return
	}
	if p.mapped != 0 {
		p.plat.UnmapMMIO(p.mapped, p)
		p.unbindNotify()
	}
	p.mapped = 0
	if want != 0 {
		if err := p.plat.MapMMIO(want, BARSize, p.name, p); err != nil {
			p.warn("virtio-pci: BAR placement refused", "err", err)
			return
		}
		p.mapped = want
		if p.phase == phaseLive {
			p.bindNotify()
		}
	}
}

// Read serves BAR0.
func (p *PCIDevice) Read(off uint64, data []byte) {
	clear(data)
	switch {
	case off < offCommon+lenCommon:
		p.mu.Lock()
		p.readCommon(off, data)
		p.mu.Unlock()
	case off == offISR:
		data[0] = p.irq.readISR()
	case off >= offDevice && off < offDevice+lenDevice:
		p.dev.ReadConfig(off-offDevice, data)
	case off >= offMSIXTable && off < offMSIXTable+lenDevice:
		p.irq.readTable(off-offMSIXTable, data)
	case off >= offMSIXPBA && off < offMSIXPBA+lenDevice:
		p.irq.readPBA(off-offMSIXPBA, data)
	}
}

// Write serves BAR0.
func (p *PCIDevice) Write(off uint64, data []byte) {
	switch {
	case off < offCommon+lenCommon:
		p.mu.Lock()
		p.writeCommon(off, data)
		p.mu.Unlock()
	case off >= offDevice && off < offDevice+lenDevice:
		p.dev.WriteConfig(off-offDevice, data)
	case off >= offNotify && off < offNotify+uint64(len(p.queues)*notifyMult):
		// Only while the ioeventfd is not bound: wake the worker.
		p.kick(int(off-offNotify) / notifyMult)
	case off >= offMSIXTable && off < offMSIXTable+lenDevice:
		p.irq.writeTable(off-offMSIXTable, data)
	}
}

// maxWarnings bounds the warnings one device logs: each is caused by the
// guest, which must not be able to flood the host's log.
const maxWarnings = 8

// warn logs a guest-caused problem, at most maxWarnings times per device
// (the last says that later ones are not logged).
func (p *PCIDevice) warn(msg string, args ...any) {
	n := p.warnings.Add(1)
	if n > maxWarnings {
		return
	}
	args = append([]any{"dev", p.name}, args...)
	if n == maxWarnings {
		args = append(args, "note", "further warnings from this device are not logged")
	}
	slog.Warn(msg, args...)
}

func uintN(data []byte) uint64 {
	var b [8]byte
	copy(b[:], data)
	return binary.LittleEndian.Uint64(b[:])
}

func putN(data []byte, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	copy(data, b[:])
}

// NumQueues is how many virtqueues the device has.
func (p *PCIDevice) NumQueues() int { return len(p.queues) }

// Threads is how many goroutines serve the device once the driver
// activates it, each holding a P in its system calls: one per queue, or
// one for a Looper.
func (p *PCIDevice) Threads() int {
	if _, ok := p.dev.(Looper); ok {
		return 1
	}
	return len(p.queues)
}

// WireINTx connects the device's INTA# to gsi (the slot's line in the
// ACPI _PRT), for drivers that do not enable MSI-X.
func (p *PCIDevice) WireINTx(gsi uint32) {
	p.cfg.SetInterruptPin(1) // INTA#
	p.cfg.SetByte(pci.InterruptLine, uint8(gsi))
	p.irq.wireINTx(gsi)
}

// Close stops the device's workers and releases its MSI routes.
func (p *PCIDevice) Close() {
	p.mu.Lock()
	p.resetLocked()
	p.mu.Unlock()
	p.irq.close()
}
