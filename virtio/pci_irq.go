package virtio

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/govm/govm/pci"
)

// MSI-X (PCI 3.0, 6.8.2) and the virtio ISR (virtio 1.2, 4.1.4.5).
const (
	noVector = 0xffff // VIRTIO_MSI_NO_VECTOR (4.1.5.1.2)

	msixCtlEnable   = 1 << 15 // Message Control: MSI-X Enable
	msixCtlFuncMask = 1 << 14 // Message Control: Function Mask
	msixVectorMask  = 1       // Vector Control: Mask Bit
	msixEntryCtl    = 12      // Vector Control's offset in a table entry

	isrQueue  = 1
	isrConfig = 2
)

// msixCapWriteMask lets the guest write only Enable and Function Mask.
var msixCapWriteMask = []byte{0, 0xc0}

// msixCap is the MSI-X capability body for a table of vectors entries in
// BAR 0 (table size is encoded as N-1).
func msixCap(vectors int) []byte {
	b := make([]byte, 10)
	binary.LittleEndian.PutUint16(b[0:], uint16(vectors-1))
	binary.LittleEndian.PutUint32(b[2:], offMSIXTable)
	binary.LittleEndian.PutUint32(b[6:], offMSIXPBA)
	return b
}

// vectorRoute is a vector's MSIRoute and the message it is set to.
type vectorRoute struct {
	r             MSIRoute
	addr          uint64
	data          uint32
	set, unusable bool
}

// pciIRQ delivers a virtio-PCI device's interrupts: the ISR, the MSI-X
// table and pending bits, each vector's route, and INTx for drivers
// without MSI-X. It has a lock of its own, separate from the transport's
// configuration lock: a device's worker raising an interrupt never waits
// for a register access or a reset.
type pciIRQ struct {
	cfg     *pci.Config
	msixCap int // MSI-X capability offset in cfg
	plat    Platform
	warn    func(msg string, args ...any)

	// quiet drops queue interrupts from a reset's start until the next
	// activation: the driver is tearing its queues down.
	quiet atomic.Bool

	mu        sync.Mutex
	isr       uint8
	table     []byte // MSI-X table, msixEntrySize per vector
	pending   []bool
	routes    []vectorRoute // per vector, made on first use
	queueVec  []uint16
	configVec uint16

	intxGSI      uint32
	intxWired    bool
	intxAsserted bool
}

// newPCIIRQ makes the interrupt state of a device with queues queues
// (and one vector more, for configuration changes).
func newPCIIRQ(cfg *pci.Config, msixCap, queues int, plat Platform, warn func(string, ...any)) *pciIRQ {
	v := queues + 1
	i := &pciIRQ{
		cfg: cfg, msixCap: msixCap, plat: plat, warn: warn,
		table:    make([]byte, v*msixEntrySize),
		pending:  make([]bool, v),
		routes:   make([]vectorRoute, v),
		queueVec: make([]uint16, queues),
	}
	for n := range v {
		i.table[n*msixEntrySize+msixEntryCtl] = msixVectorMask // vectors start masked
	}
	i.quiet.Store(true)
	i.resetLocked()
	return i
}

// queue is the device's notification for queue q (the function Activate
// hands the device).
func (i *pciIRQ) queue(q int) {
	if i.quiet.Load() {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.isr |= isrQueue
	if q >= 0 && q < len(i.queueVec) {
		i.signalLocked(i.queueVec[q])
	}
}

// configChanged tells the driver the device's configuration or status
// changed (4.1.4.5, 2.1.2).
func (i *pciIRQ) configChanged() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.isr |= isrConfig
	i.signalLocked(i.configVec)
}

// readISR returns the ISR and clears it, which lowers INTx (4.1.4.5).
func (i *pciIRQ) readISR() uint8 {
	i.mu.Lock()
	defer i.mu.Unlock()
	v := i.isr
	i.isr = 0
	i.setINTxLocked(false)
	return v
}

// validVector is v if it names an entry of the table, else NO_VECTOR: a
// device answers a vector it cannot use with NO_VECTOR on read-back
// (4.1.5.1.2.1).
func (i *pciIRQ) validVector(v uint16) uint16 {
	if int(v) < len(i.pending) {
		return v
	}
	return noVector
}

func (i *pciIRQ) setConfigVector(v uint16) {
	i.mu.Lock()
	i.configVec = i.validVector(v)
	i.mu.Unlock()
}

func (i *pciIRQ) configVector() uint16 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.configVec
}

func (i *pciIRQ) setQueueVector(q int, v uint16) {
	i.mu.Lock()
	i.queueVec[q] = i.validVector(v)
	i.mu.Unlock()
}

func (i *pciIRQ) queueVector(q int) uint16 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.queueVec[q]
}

func (i *pciIRQ) readTable(off uint64, data []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if off+uint64(len(data)) <= uint64(len(i.table)) {
		copy(data, i.table[off:])
	}
}

// writeTable updates the table and sends what became unmasked.
func (i *pciIRQ) writeTable(off uint64, data []byte) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if off+uint64(len(data)) <= uint64(len(i.table)) {
		copy(i.table[off:], data)
		i.deliverPendingLocked()
	}
}

// readPBA serves the Pending Bit Array: one bit per vector.
func (i *pciIRQ) readPBA(off uint64, data []byte) {
	i.mu.Lock()
	var bits uint64
	for n, pend := range i.pending {
		if pend {
			bits |= 1 << n
		}
	}
	i.mu.Unlock()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], bits)
	if off < uint64(len(b)) {
		copy(data, b[off:])
	}
}

// configWritten follows a configuration space write of n bytes at off:
// clearing the function mask releases pending vectors (PCI 3.0,
// 6.8.2.3), enabling MSI-X lowers INTx, and the Command register's INTx
// disable (6.2.2) lowers or raises the line.
func (i *pciIRQ) configWritten(off, n int) {
	ctl := i.msixCap + 2
	touches := func(reg, size int) bool { return off < reg+size && off+n > reg }
	if !touches(ctl, 2) && !touches(pci.Command, 2) {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.deliverPendingLocked()
	i.setINTxLocked(i.isr != 0)
}

func (i *pciIRQ) wireINTx(gsi uint32) {
	i.mu.Lock()
	i.intxGSI, i.intxWired = gsi, true
	i.mu.Unlock()
}

func (i *pciIRQ) msixControl() uint16 { return i.cfg.Uint16(i.msixCap + 2) }

// masked reports whether vector v's entry has its mask bit set.
func (i *pciIRQ) masked(v int) bool {
	return binary.LittleEndian.Uint32(i.table[v*msixEntrySize+msixEntryCtl:])&msixVectorMask != 0
}

// setINTxLocked raises or lowers INTx. It raises it only where INTx is
// the device's interrupt: wired, MSI-X off, and not disabled in the
// Command register (PCI 3.0, 6.2.2).
func (i *pciIRQ) setINTxLocked(assert bool) {
	if assert && (!i.intxWired || i.msixControl()&msixCtlEnable != 0 || i.cfg.Uint16(pci.Command)&pci.CommandIntxOff != 0) {
		assert = false
	}
	if assert == i.intxAsserted {
		return
	}
	i.intxAsserted = assert
	i.cfg.SetIntxStatus(assert)
	i.plat.SetINTx(i.intxGSI, assert)
}

// signalLocked delivers MSI-X vector v, or records it pending while
// masked; without MSI-X it raises INTx (the caller has set the ISR bit).
func (i *pciIRQ) signalLocked(v uint16) {
	ctl := i.msixControl()
	if ctl&msixCtlEnable == 0 {
		i.setINTxLocked(true)
		return
	}
	if v == noVector || int(v) >= len(i.pending) {
		return
	}
	if ctl&msixCtlFuncMask != 0 || i.masked(int(v)) {
		i.pending[v] = true
		return
	}
	e := i.table[int(v)*msixEntrySize:]
	addr := binary.LittleEndian.Uint64(e[0:])
	data := binary.LittleEndian.Uint32(e[8:])
	if i.fireRoute(v, addr, data) {
		return
	}
	if err := i.plat.SignalMSI(addr, data); err != nil {
		i.warn("virtio-pci: MSI delivery failed", "err", err)
	}
}

// fireRoute sends vector v's message (addr, data) through its MSIRoute,
// making the route on first use and retargeting it when the driver has
// rewritten the table entry. It reports false when the vector has no
// usable route, and the caller sends the message itself.
func (i *pciIRQ) fireRoute(v uint16, addr uint64, data uint32) bool {
	vr := &i.routes[v]
	if vr.unusable {
		return false
	}
	if vr.r == nil {
		r, err := i.plat.NewMSIRoute()
		if err != nil {
			vr.unusable = true
			return false
		}
		vr.r = r
	}
	if !vr.set || vr.addr != addr || vr.data != data {
		if err := vr.r.Set(addr, data); err != nil {
			i.warn("virtio-pci: MSI route refused; sending each interrupt instead", "vector", v, "err", err)
			vr.unusable = true
			return false
		}
		vr.addr, vr.data, vr.set = addr, data, true
	}
	return vr.r.Fire() == nil
}

// deliverPendingLocked sends vectors that were pending while masked. Once
// MSI-X is on, INTx is no longer the device's interrupt and goes low.
func (i *pciIRQ) deliverPendingLocked() {
	ctl := i.msixControl()
	if ctl&msixCtlEnable != 0 {
		i.setINTxLocked(false)
	}
	if ctl&msixCtlFuncMask != 0 {
		return
	}
	for v, pend := range i.pending {
		if pend && !i.masked(v) {
			i.pending[v] = false
			i.signalLocked(uint16(v))
		}
	}
}

// reset returns the interrupt state to its initial values: no vectors
// assigned, nothing pending, the ISR clear and INTx low. The MSI-X table
// belongs to the PCI function, not to the virtio device, and stays.
func (i *pciIRQ) reset() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.resetLocked()
}

func (i *pciIRQ) resetLocked() {
	i.isr = 0
	i.setINTxLocked(false)
	i.configVec = noVector
	for q := range i.queueVec {
		i.queueVec[q] = noVector
	}
	clear(i.pending)
}

// vectorState describes queue q's vector for the state report: its
// number (NO_VECTOR if none) and whether it is masked or pending.
func (i *pciIRQ) vectorState(q int) (v uint16, masked, pending bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	v = i.queueVec[q]
	if v == noVector || int(v) >= len(i.pending) {
		return noVector, false, false
	}
	return v, i.masked(int(v)), i.pending[v]
}

// peekISR reads the ISR without clearing it.
func (i *pciIRQ) peekISR() uint8 {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.isr
}

// functionMasked reports MSI-X's Function Mask.
func (i *pciIRQ) functionMasked() bool { return i.msixControl()&msixCtlFuncMask != 0 }

// close releases the vectors' routes.
func (i *pciIRQ) close() {
	i.mu.Lock()
	defer i.mu.Unlock()
	for n := range i.routes {
		if r := i.routes[n].r; r != nil {
			r.Close()
		}
		i.routes[n] = vectorRoute{}
	}
}
