package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/mem"
	"github.com/govm/govm/osthread"
	"github.com/govm/govm/pci"
)

// Platform is what the PCI transport needs from the VM: placing its BAR on
// the MMIO bus, binding queue notifications to eventfds in the kernel, and
// delivering MSIs.
type Platform interface {
	MapMMIO(base, size uint64, name string, dev MMIODevice) error
	UnmapMMIO(base uint64, dev MMIODevice)
	IOEventFD(fd int, addr uint64, length uint32, deassign bool) error
	// NewMSIRoute gives an MSI that is cheap to send (an irqfd); where
	// the platform has none, SignalMSI sends each message.
	NewMSIRoute() (MSIRoute, error)
	SignalMSI(addr uint64, data uint32) error
	// SetINTx asserts or deasserts the device's share of a level-
	// triggered interrupt line (several devices may drive one GSI).
	SetINTx(gsi uint32, asserted bool)
}

// MSIRoute is one MSI-X vector's path to the guest: Set (re)targets it at
// a message, Fire sends it.
type MSIRoute interface {
	Set(addr uint64, data uint32) error
	Fire() error
	Close()
}

// vectorRoute is a vector's MSIRoute and the message it is set to.
type vectorRoute struct {
	r             MSIRoute
	addr          uint64
	data          uint32
	set, unusable bool
}

// MMIODevice serves accesses to a mapped range (machine.Device).
type MMIODevice interface {
	Read(off uint64, data []byte)
	Write(off uint64, data []byte)
}

// Virtio PCI constants (virtio 1.2, 4.1).
const (
	pciVendorVirtio = 0x1af4
	pciDeviceBase   = 0x1040 // modern device ID = 0x1040 + type
	pciRevision     = 1

	capCommon = 1
	capNotify = 2
	capISR    = 3
	capDevice = 4

	// BAR0 layout.
	BARSize       = 0x8000
	offCommon     = 0x0000
	lenCommon     = 0x38
	offISR        = 0x1000
	lenISR        = 1
	offDevice     = 0x2000
	lenDevice     = 0x1000
	offNotify     = 0x3000
	notifyMult    = 4
	offMSIXTable  = 0x4000
	offMSIXPBA    = 0x5000
	msixEntrySize = 16

	// Common configuration (4.1.4.3).
	ccDeviceFeatureSel = 0x00
	ccDeviceFeature    = 0x04
	ccDriverFeatureSel = 0x08
	ccDriverFeature    = 0x0c
	ccConfigMSIX       = 0x10
	ccNumQueues        = 0x12
	ccStatus           = 0x14
	ccConfigGen        = 0x15
	ccQueueSelect      = 0x16
	ccQueueSize        = 0x18
	ccQueueMSIX        = 0x1a
	ccQueueEnable      = 0x1c
	ccQueueNotifyOff   = 0x1e
	ccQueueDesc        = 0x20
	ccQueueDriver      = 0x28
	ccQueueDevice      = 0x30

	// Device status (2.1).
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 64
	StatusFailed      = 128

	noVector = 0xffff

	msixCtlEnable   = 1 << 15
	msixCtlFuncMask = 1 << 14
	msixVectorMask  = 1

	isrQueue  = 1
	isrConfig = 2
)

type pciQueue struct {
	q        Queue
	size     uint16
	enabled  bool
	vector   uint16
	efd      int
	notifyAt uint64 // ioeventfd address registered, 0 if none
}

// PCIDevice is a virtio device behind the modern virtio-PCI transport.
type PCIDevice struct {
	name string
	dev  Device
	mem  *mem.Memory
	plat Platform
	Cfg  *pci.Config
	msix int // MSI-X capability offset

	mu          sync.Mutex
	mapped      uint64 // BAR address mapped on the bus, 0 if none
	devFeatSel  uint32
	drvFeatSel  uint32
	drvFeatures uint64
	status      uint8
	configGen   uint8
	queueSel    uint16
	configVec   uint16
	isr         uint8
	queues      []pciQueue
	table       []byte // MSI-X table
	pending     []bool
	routes      []vectorRoute // per vector, made on first use

	warnings atomic.Int32 // guest-caused warnings logged so far

	// INTx, for drivers without MSI-X (virtio 1.2, 4.1.4.5): the line is
	// asserted while the ISR is non-zero, and reading the ISR lowers it.
	intxGSI      uint32
	intxWired    bool
	intxAsserted bool

	live   bool // activated
	stop   atomic.Bool
	stopFd int // a Looper's stop eventfd while it runs, else -1
	// threadName names the worker threads (SetThreadName), "" for none.
	threadName string
	// interactive puts the named worker threads under SCHED_NORMAL
	// (SetThreadName).
	interactive bool
	workers     sync.WaitGroup
}

// NewPCIDevice wraps dev in the transport, with its BAR at barAddr.
func NewPCIDevice(name string, dev Device, m *mem.Memory, plat Platform, barAddr uint64) *PCIDevice {
	n := dev.NumQueues()
	p := &PCIDevice{
		name: name, dev: dev, mem: m, plat: plat,
		queues:    make([]pciQueue, n),
		table:     make([]byte, (n+1)*msixEntrySize),
		pending:   make([]bool, n+1),
		routes:    make([]vectorRoute, n+1),
		configVec: noVector,
		stopFd:    -1,
	}
	for i := range p.queues {
		p.queues[i] = pciQueue{size: dev.QueueMax(), vector: noVector, efd: -1}
	}
	for v := 0; v <= n; v++ {
		p.table[v*msixEntrySize+12] = msixVectorMask // vectors start masked
	}
	class, sub := uint8(0xff), uint8(0)
	switch dev.Type() {
	case TypeBlock:
		class, sub = 0x01, 0x00
	case TypeNet:
		class, sub = 0x02, 0x00
	}
	c := pci.NewConfig(pciVendorVirtio, pciDeviceBase+dev.Type(), class, sub, 0)
	c.SetByte(pci.RevisionID, pciRevision)
	c.SetSubsystem(pciVendorVirtio, dev.Type())
	c.AddMem64BAR(0, BARSize, barAddr)
	vcap := func(typ uint8, off, length uint32, extra []byte) []byte {
		b := make([]byte, 14+len(extra))
		b[0] = byte(16 + len(extra)) // cap_len, from the capability's start
		b[1] = typ
		b[2] = 0 // BAR 0
		binary.LittleEndian.PutUint32(b[6:], off)
		binary.LittleEndian.PutUint32(b[10:], length)
		copy(b[14:], extra)
		return b
	}
	c.AddCapability(pci.CapVendor, vcap(capCommon, offCommon, lenCommon, nil), nil)
	mult := make([]byte, 4)
	binary.LittleEndian.PutUint32(mult, notifyMult)
	c.AddCapability(pci.CapVendor, vcap(capNotify, offNotify, uint32(n*notifyMult), mult), nil)
	c.AddCapability(pci.CapVendor, vcap(capISR, offISR, lenISR, nil), nil)
	c.AddCapability(pci.CapVendor, vcap(capDevice, offDevice, lenDevice, nil), nil)
	mx := make([]byte, 10)
	binary.LittleEndian.PutUint16(mx[0:], uint16(n)) // table size - 1 = n (n queues + config)
	binary.LittleEndian.PutUint32(mx[2:], offMSIXTable)
	binary.LittleEndian.PutUint32(mx[6:], offMSIXPBA)
	p.msix = c.AddCapability(pci.CapMSIX, mx, []byte{0, 0xc0})
	c.OnWrite = func(off int, data []byte) {
		p.remap()
		// Clearing the function mask in Message Control releases the
		// vectors that became pending meanwhile (PCI 3.0, 6.8.2.3).
		if ctl := p.msix + 2; off < ctl+2 && off+len(data) > ctl {
			p.deliverPending()
		}
		// INTx disable in the Command register (PCI 3.0, 6.2.2).
		if off <= pci.Command+1 && off+len(data) > pci.Command+1 {
			p.mu.Lock()
			p.setINTxLocked(p.isr != 0)
			p.mu.Unlock()
		}
	}
	p.Cfg = c
	return p
}

// remap follows the guest's BAR and memory-enable settings.
func (p *PCIDevice) remap() {
	want := uint64(0)
	if p.Cfg.MemoryEnabled() {
		a := p.Cfg.BARAddr(0)
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
		if p.live {
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
		p.mu.Lock()
		data[0] = p.isr
		p.isr = 0 // reading ISR clears it (4.1.4.5), and lowers INTx
		p.setINTxLocked(false)
		p.mu.Unlock()
	case off >= offDevice && off < offDevice+lenDevice:
		p.dev.ReadConfig(off-offDevice, data)
	case off >= offMSIXTable && off+uint64(len(data)) <= offMSIXTable+uint64(len(p.table)):
		p.mu.Lock()
		copy(data, p.table[off-offMSIXTable:])
		p.mu.Unlock()
	case off >= offMSIXPBA && off < offMSIXPBA+8:
		p.mu.Lock()
		var bits uint64
		for i, pend := range p.pending {
			if pend {
				bits |= 1 << i
			}
		}
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], bits)
		copy(data, b[off-offMSIXPBA:])
		p.mu.Unlock()
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
		// Only when the ioeventfd is not bound (yet): wake the worker.
		p.kick(int(off-offNotify) / notifyMult)
	case off >= offMSIXTable && off+uint64(len(data)) <= offMSIXTable+uint64(len(p.table)):
		p.mu.Lock()
		copy(p.table[off-offMSIXTable:], data)
		p.mu.Unlock()
		p.deliverPending()
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

func (p *PCIDevice) selected() *pciQueue {
	if int(p.queueSel) < len(p.queues) {
		return &p.queues[p.queueSel]
	}
	return nil
}

func (p *PCIDevice) readCommon(off uint64, data []byte) {
	q := p.selected()
	switch off {
	case ccDeviceFeatureSel:
		putN(data, uint64(p.devFeatSel))
	case ccDeviceFeature:
		if p.devFeatSel < 2 {
			putN(data, p.offered()>>(32*p.devFeatSel)&0xffffffff)
		}
	case ccDriverFeatureSel:
		putN(data, uint64(p.drvFeatSel))
	case ccDriverFeature:
		if p.drvFeatSel < 2 {
			putN(data, p.drvFeatures>>(32*p.drvFeatSel)&0xffffffff)
		}
	case ccConfigMSIX:
		putN(data, uint64(p.configVec))
	case ccNumQueues:
		putN(data, uint64(len(p.queues)))
	case ccStatus:
		putN(data, uint64(p.status))
	case ccConfigGen:
		putN(data, uint64(p.configGen))
	case ccQueueSelect:
		putN(data, uint64(p.queueSel))
	case ccQueueSize, ccQueueMSIX, ccQueueEnable, ccQueueNotifyOff, ccQueueDesc, ccQueueDesc + 4,
		ccQueueDriver, ccQueueDriver + 4, ccQueueDevice, ccQueueDevice + 4:
		if q == nil {
			return
		}
		switch off {
		case ccQueueSize:
			putN(data, uint64(q.size))
		case ccQueueMSIX:
			putN(data, uint64(q.vector))
		case ccQueueEnable:
			if q.enabled {
				putN(data, 1)
			}
		case ccQueueNotifyOff:
			putN(data, uint64(p.queueSel))
		case ccQueueDesc, ccQueueDesc + 4:
			putN(data, q.q.Desc>>(8*(off-ccQueueDesc)))
		case ccQueueDriver, ccQueueDriver + 4:
			putN(data, q.q.Avail>>(8*(off-ccQueueDriver)))
		case ccQueueDevice, ccQueueDevice + 4:
			putN(data, q.q.Used>>(8*(off-ccQueueDevice)))
		}
	}
}

// offered is what the device offers: its own features plus the transport's.
func (p *PCIDevice) offered() uint64 {
	return p.dev.Features() | FeatureVersion1 | FeatureEventIdx | FeatureIndirectDesc
}

// setAddr updates the low or high half of a 64-bit ring address.
func setAddr(dst *uint64, off uint64, v uint64, n int) {
	shift := 8 * off
	mask := uint64(1)<<(8*uint(n)) - 1
	if n >= 8 {
		mask = ^uint64(0)
	}
	*dst = *dst&^(mask<<shift) | (v&mask)<<shift
}

func (p *PCIDevice) writeCommon(off uint64, data []byte) {
	v := uintN(data)
	q := p.selected()
	// Queue configuration is frozen once the driver says DRIVER_OK
	// (4.1.4.3.2); writes after that are ignored.
	queueCfg := !p.live && q != nil && p.status&StatusFeaturesOK != 0
	switch off {
	case ccDeviceFeatureSel:
		p.devFeatSel = uint32(v)
	case ccDriverFeatureSel:
		p.drvFeatSel = uint32(v)
	case ccDriverFeature:
		if p.drvFeatSel < 2 && p.status&StatusFeaturesOK == 0 {
			shift := 32 * p.drvFeatSel
			p.drvFeatures = p.drvFeatures&^(0xffffffff<<shift) | (v&0xffffffff)<<shift
		}
	case ccConfigMSIX:
		p.configVec = uint16(v)
	case ccStatus:
		p.setStatus(uint8(v))
	case ccQueueSelect:
		p.queueSel = uint16(v)
	case ccQueueSize:
		if queueCfg {
			q.size = uint16(v)
		}
	case ccQueueMSIX:
		if q != nil && !p.live {
			q.vector = uint16(v)
		}
	case ccQueueEnable:
		if queueCfg && v == 1 {
			q.enabled = true
		}
	case ccQueueDesc, ccQueueDesc + 4:
		if queueCfg {
			setAddr(&q.q.Desc, off-ccQueueDesc, v, len(data))
		}
	case ccQueueDriver, ccQueueDriver + 4:
		if queueCfg {
			setAddr(&q.q.Avail, off-ccQueueDriver, v, len(data))
		}
	case ccQueueDevice, ccQueueDevice + 4:
		if queueCfg {
			setAddr(&q.q.Used, off-ccQueueDevice, v, len(data))
		}
	}
}

// setStatus runs the device status state machine (2.1, 3.1.1).
func (p *PCIDevice) setStatus(s uint8) {
	if s == 0 {
		p.resetLocked()
		return
	}
	if s&^p.status&StatusFeaturesOK != 0 {
		// Only offered features, and VERSION_1, may be accepted.
		if p.drvFeatures&^p.offered() != 0 || p.drvFeatures&FeatureVersion1 == 0 {
			s &^= StatusFeaturesOK
		}
	}
	if s&^p.status&StatusDriverOK != 0 && p.status&StatusFeaturesOK != 0 && !p.live {
		p.status = s
		if err := p.activateLocked(); err != nil {
			p.warn("virtio-pci: activation failed", "err", err)
			p.needsResetLocked()
		}
		return
	}
	p.status = s | p.status&StatusNeedsReset
}

func (p *PCIDevice) activateLocked() error {
	var qs []*Queue
	for i := range p.queues {
		pq := &p.queues[i]
		pq.q.Size = pq.size
		pq.q.EventIdx = p.drvFeatures&FeatureEventIdx != 0
		if !pq.enabled {
			qs = append(qs, nil)
			continue
		}
		if err := pq.q.Validate(p.mem, p.dev.QueueMax()); err != nil {
			return fmt.Errorf("queue %d: %w", i, err)
		}
		qs = append(qs, &pq.q)
	}
	proc, _ := p.dev.(Processor)
	looper, _ := p.dev.(Looper)
	if proc == nil && looper == nil {
		return fmt.Errorf("virtio-pci: %s serves no queues (neither Processor nor Looper)", p.name)
	}
	// The eventfds first: nothing can fail once the device is active.
	kicks := make([]int, len(p.queues))
	for i := range p.queues {
		kicks[i] = -1
		if !p.queues[i].enabled {
			continue
		}
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			p.closeKicks()
			return fmt.Errorf("eventfd: %w", err)
		}
		p.queues[i].efd, kicks[i] = efd, efd
	}
	stopFd := -1
	if looper != nil {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			p.closeKicks()
			return fmt.Errorf("eventfd: %w", err)
		}
		stopFd = fd
	}
	if err := p.dev.Activate(p.mem, p.drvFeatures, qs, p.interrupt); err != nil {
		p.closeKicks()
		if stopFd >= 0 {
			unix.Close(stopFd)
		}
		return err
	}
	p.stop.Store(false)
	if looper != nil {
		p.stopFd = stopFd
		p.workers.Add(1)
		go p.loop(looper, kicks, stopFd)
	} else {
		for i, efd := range kicks {
			if efd >= 0 {
				name := p.threadName
				if name != "" && len(p.queues) > 1 {
					name = fmt.Sprintf("%s-q%d", name, i)
				}
				p.workers.Add(1)
				go p.worker(proc, i, efd, name, p.interactive)
			}
		}
	}
	p.live = true
	if p.mapped != 0 {
		p.bindNotify()
	}
	return nil
}

// closeKicks closes the queues' eventfds.
func (p *PCIDevice) closeKicks() {
	for i := range p.queues {
		if p.queues[i].efd >= 0 {
			unix.Close(p.queues[i].efd)
			p.queues[i].efd = -1
		}
	}
}

// bindNotify asks KVM to signal each queue's eventfd on a write to its
// notify address, so a kick costs no exit to userspace.
func (p *PCIDevice) bindNotify() {
	for i := range p.queues {
		pq := &p.queues[i]
		if pq.efd < 0 || pq.notifyAt != 0 {
			continue
		}
		addr := p.mapped + offNotify + uint64(i*notifyMult)
		if err := p.plat.IOEventFD(pq.efd, addr, 2, false); err != nil {
			slog.Debug("virtio-pci: ioeventfd refused; kicks will exit to userspace", "dev", p.name, "err", err)
			continue
		}
		pq.notifyAt = addr
	}
}

func (p *PCIDevice) unbindNotify() {
	for i := range p.queues {
		pq := &p.queues[i]
		if pq.notifyAt != 0 {
			_ = p.plat.IOEventFD(pq.efd, pq.notifyAt, 2, true)
			pq.notifyAt = 0
		}
	}
}

// NumQueues is how many virtqueues the device has.
func (p *PCIDevice) NumQueues() int { return len(p.queues) }

// Threads is how many goroutines serve the device once the driver
// activates it, each holding a P in its system calls: one per queue, or
// one for a Looper (which waits in Go's poller, but its writes and reads
// of a backend can be long).
func (p *PCIDevice) Threads() int {
	if _, ok := p.dev.(Looper); ok {
		return 1
	}
	return len(p.queues)
}

func (p *PCIDevice) kick(q int) {
	p.mu.Lock()
	efd := -1
	if q < len(p.queues) {
		efd = p.queues[q].efd
	}
	p.mu.Unlock()
	if efd >= 0 {
		var one [8]byte
		one[0] = 1
		_, _ = unix.Write(efd, one[:])
	}
}

func (p *PCIDevice) worker(dev Processor, q, efd int, thread string, interactive bool) {
	defer p.workers.Done()
	p.lockThread(thread, interactive)
	var buf [8]byte
	var y osthread.Yielder // it only ever blocks in read(2)
	for {
		// After the last request's interrupt, not before the next one.
		y.Maybe(time.Now())
		if _, err := unix.Read(efd, buf[:]); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if p.stop.Load() {
			return
		}
		if err := dev.Process(q); err != nil {
			p.driverBroke(q, err)
			return
		}
	}
}

// loop runs a Looper until the reset signals stop, on no thread of its
// own (see Looper).
func (p *PCIDevice) loop(dev Looper, kicks []int, stop int) {
	defer p.workers.Done()
	if err := dev.Loop(kicks, stop); err != nil {
		p.driverBroke(-1, err)
	}
}

// lockThread locks the calling worker to its thread and names it, if the
// device has a thread name, and puts it under SCHED_NORMAL if asked.
func (p *PCIDevice) lockThread(name string, interactive bool) {
	if name == "" {
		return
	}
	if err := osthread.Lock(name); err != nil {
		slog.Debug("virtio-pci: worker thread", "dev", p.name, "err", err)
	}
	if interactive { // the thread is locked even if naming failed
		if err := osthread.Interactive(); err != nil {
			slog.Warn("virtio-pci: worker thread policy", "dev", p.name, "err", err)
		}
	}
}

// SetThreadName names the threads that serve the device's queues: name
// itself for a one-queue device's, name-qN for queue N's otherwise (cut to
// the 15 bytes Linux keeps). With interactive, each also goes under
// SCHED_NORMAL (osthread.Interactive), for a process whose other threads
// run SCHED_BATCH: a worker that serves one request at a time while the
// guest waits gains nothing from waiting for its turn. A Looper has no
// thread of its own to name. Set it before the driver activates the device.
func (p *PCIDevice) SetThreadName(name string, interactive bool) {
	p.mu.Lock()
	p.threadName, p.interactive = name, interactive
	p.mu.Unlock()
}

// driverBroke marks the device as needing reset after the driver broke
// the rules on queue q (-1: the device does not say which).
func (p *PCIDevice) driverBroke(q int, err error) {
	p.warn("virtio: device needs reset", "queue", q, "err", err)
	p.mu.Lock()
	p.needsResetLocked()
	p.mu.Unlock()
}

// needsResetLocked sets DEVICE_NEEDS_RESET and tells the driver through
// the configuration-change interrupt (2.1.2).
func (p *PCIDevice) needsResetLocked() {
	p.status |= StatusNeedsReset
	p.configGen++
	p.isr |= isrConfig
	p.signalLocked(p.configVec)
}

// interrupt is the device's notification for queue q.
//
// A device may call it from a goroutine of its own (virtio-net's receive
// loop) that its Reset waits for, while the reset holds p.mu: so once a
// reset has begun (p.stop) it gives up instead of waiting for the lock.
func (p *PCIDevice) interrupt(q int) {
	for !p.mu.TryLock() {
		if p.stop.Load() {
			return
		}
		runtime.Gosched()
	}
	defer p.mu.Unlock()
	if p.stop.Load() {
		return
	}
	p.isr |= isrQueue
	if q < len(p.queues) {
		p.signalLocked(p.queues[q].vector)
	}
}

func (p *PCIDevice) msixControl() uint16 {
	return p.Cfg.Uint16(p.msix + 2)
}

// WireINTx connects the device's INTA# to gsi (the slot's line in the
// ACPI _PRT), for drivers that do not enable MSI-X.
func (p *PCIDevice) WireINTx(gsi uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intxGSI, p.intxWired = gsi, true
	p.Cfg.SetInterruptPin(1) // INTA#
	p.Cfg.SetByte(pci.InterruptLine, uint8(gsi))
}

// setINTxLocked raises or lowers INTx. It raises it only where INTx is
// the device's interrupt: wired, MSI-X off, and not disabled in the
// Command register (PCI 3.0, 6.2.2).
func (p *PCIDevice) setINTxLocked(assert bool) {
	if assert && (!p.intxWired || p.msixControl()&msixCtlEnable != 0 || p.Cfg.Uint16(pci.Command)&pci.CommandIntxOff != 0) {
		assert = false
	}
	if assert == p.intxAsserted {
		return
	}
	p.intxAsserted = assert
	p.Cfg.SetIntxStatus(assert)
	p.plat.SetINTx(p.intxGSI, assert)
}

// signalLocked delivers MSI-X vector v, or records it pending while masked;
// without MSI-X it raises INTx (the caller has set the ISR bit).
func (p *PCIDevice) signalLocked(v uint16) {
	ctl := p.msixControl()
	if ctl&msixCtlEnable == 0 {
		p.setINTxLocked(true)
		return
	}
	if v == noVector || int(v) >= len(p.pending) {
		return
	}
	e := p.table[int(v)*msixEntrySize:]
	if ctl&msixCtlFuncMask != 0 || binary.LittleEndian.Uint32(e[12:])&msixVectorMask != 0 {
		p.pending[v] = true
		return
	}
	addr := binary.LittleEndian.Uint64(e[0:])
	data := binary.LittleEndian.Uint32(e[8:])
	if p.fireRoute(v, addr, data) {
		return
	}
	if err := p.plat.SignalMSI(addr, data); err != nil {
		p.warn("virtio-pci: MSI delivery failed", "err", err)
	}
}

// fireRoute sends vector v's message (addr, data) through its MSIRoute,
// making the route on first use and retargeting it when the driver has
// rewritten the table entry. It reports false when the vector has no
// usable route, and the caller sends the message itself.
func (p *PCIDevice) fireRoute(v uint16, addr uint64, data uint32) bool {
	vr := &p.routes[v]
	if vr.unusable {
		return false
	}
	if vr.r == nil {
		r, err := p.plat.NewMSIRoute()
		if err != nil {
			vr.unusable = true
			return false
		}
		vr.r = r
	}
	if !vr.set || vr.addr != addr || vr.data != data {
		if err := vr.r.Set(addr, data); err != nil {
			p.warn("virtio-pci: MSI route refused; sending each interrupt instead", "vector", v, "err", err)
			vr.unusable = true
			return false
		}
		vr.addr, vr.data, vr.set = addr, data, true
	}
	return vr.r.Fire() == nil
}

// deliverPending sends vectors that were pending while masked. Once MSI-X
// is on, INTx is no longer the device's interrupt and goes low.
func (p *PCIDevice) deliverPending() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.msixControl()&msixCtlEnable != 0 {
		p.setINTxLocked(false)
	}
	for v, pend := range p.pending {
		if pend {
			e := p.table[v*msixEntrySize:]
			if binary.LittleEndian.Uint32(e[12:])&msixVectorMask == 0 && p.msixControl()&msixCtlFuncMask == 0 {
				p.pending[v] = false
				p.signalLocked(uint16(v))
			}
		}
	}
}

// resetLocked stops the workers and returns the device to its initial
// state. The lock is released while workers finish.
func (p *PCIDevice) resetLocked() {
	if p.live {
		p.stop.Store(true)
		p.unbindNotify()
		var one [8]byte
		one[0] = 1
		if p.stopFd >= 0 {
			// A Looper stops on its stop eventfd alone: a write to its
			// kick eventfds would read as the driver's kick and have it
			// serve the queues once more while the device resets.
			_, _ = unix.Write(p.stopFd, one[:])
		} else {
			// Queue workers wake on their kick and then see stop.
			for i := range p.queues {
				if efd := p.queues[i].efd; efd >= 0 {
					_, _ = unix.Write(efd, one[:])
				}
			}
		}
		p.mu.Unlock()
		p.workers.Wait()
		p.mu.Lock()
		p.dev.Reset()
	}
	p.closeKicks()
	if p.stopFd >= 0 {
		unix.Close(p.stopFd)
		p.stopFd = -1
	}
	for i := range p.queues {
		p.queues[i] = pciQueue{size: p.dev.QueueMax(), vector: noVector, efd: -1}
	}
	p.live = false
	p.status, p.drvFeatures, p.devFeatSel, p.drvFeatSel, p.queueSel, p.isr = 0, 0, 0, 0, 0, 0
	p.setINTxLocked(false)
	p.configVec = noVector
	for i := range p.pending {
		p.pending[i] = false
	}
}

// Close stops the device's workers and releases its MSI routes.
func (p *PCIDevice) Close() {
	p.mu.Lock()
	p.resetLocked()
	for i := range p.routes {
		if r := p.routes[i].r; r != nil {
			r.Close()
		}
		p.routes[i] = vectorRoute{}
	}
	p.mu.Unlock()
}

// stateLockWait bounds State's wait for the transport lock.
const stateLockWait = 100 * time.Millisecond

// State describes the device in one line for a stopped VM's report: the
// status, and per live queue the driver's and device's ring indexes and
// event indexes as guest memory holds them, with the queue's MSI-X vector
// and whether it is masked or pending. A driver index ahead of the used
// index with no kick expected, or a used index the driver waits on with
// the vector pending, says which side is stuck.
//
// It waits at most stateLockWait for the device's lock, so a device stuck
// holding it is reported as such instead of hanging the report.
func (p *PCIDevice) State() string {
	deadline := time.Now().Add(stateLockWait)
	for !p.mu.TryLock() {
		if time.Now().After(deadline) {
			return fmt.Sprintf("virtio %s: busy (transport lock held for %v)", p.name, stateLockWait)
		}
		time.Sleep(time.Millisecond)
	}
	defer p.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "virtio %s: status %#x isr %#x", p.name, p.status, p.isr)
	if p.msixControl()&msixCtlFuncMask != 0 {
		b.WriteString(" msix-function-masked")
	}
	for i := range p.queues {
		pq := &p.queues[i]
		if !p.live || !pq.enabled {
			continue
		}
		q := &pq.q
		availIdx, err1 := p.mem.Uint16(q.Avail + 2)
		usedIdx, err2 := p.mem.Uint16(q.Used + 2)
		usedEvent, err3 := p.mem.Uint16(q.Avail + availHeader + 2*uint64(q.Size))
		availEvent, err4 := p.mem.Uint16(q.availEventAddr())
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			fmt.Fprintf(&b, "; q%d unreadable", i)
			continue
		}
		fmt.Fprintf(&b, "; q%d avail %d used %d used-event %d avail-event %d", i, availIdx, usedIdx, usedEvent, availEvent)
		if v := pq.vector; v != noVector && int(v) < len(p.pending) {
			masked := binary.LittleEndian.Uint32(p.table[int(v)*msixEntrySize+12:])&msixVectorMask != 0
			fmt.Fprintf(&b, " vec %d", v)
			if masked {
				b.WriteString(" masked")
			}
			if p.pending[v] {
				b.WriteString(" pending")
			}
		} else {
			b.WriteString(" no-vector")
		}
	}
	return b.String()
}
