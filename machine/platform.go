package machine

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/govm/govm/bus"
	"github.com/govm/govm/osthread"
	"github.com/govm/govm/virtio"
)

// devicePlatform is what one virtio-PCI device sees of the machine
// (virtio.Platform): the MMIO bus in the PCI window, ioeventfds, MSI
// routes, its share of an INTx line, and threads for its queue workers.
type devicePlatform struct {
	m   *Machine
	dev any // the device's key on a shared INTx line
	// thread names the device's queue worker threads: thread itself for
	// a one-queue device, thread-qN for queue N otherwise.
	thread string
}

// MapMMIO places a device range on the MMIO bus, inside the PCI window.
func (p *devicePlatform) MapMMIO(base, size uint64, name string, dev bus.Device) error {
	if base < PCIMMIOBase || base+size > PCIMMIOEnd || base+size < base {
		return fmt.Errorf("%s at %#x+%#x is outside the PCI window", name, base, size)
	}
	return p.m.mmio.Insert(base, size, name, dev)
}

// UnmapMMIO removes it again.
func (p *devicePlatform) UnmapMMIO(base uint64, dev bus.Device) { p.m.mmio.Remove(base, dev) }

// IOEventFD binds an eventfd to guest writes of length bytes at addr.
func (p *devicePlatform) IOEventFD(fd int, addr uint64, length uint32, deassign bool) error {
	return p.m.vm.IOEventFD(fd, addr, length, false, false, 0, deassign)
}

// NewMSIRoute gives the device an irqfd-backed MSI.
func (p *devicePlatform) NewMSIRoute() (virtio.MSIRoute, error) {
	return p.m.msi.alloc()
}

// SignalMSI injects one MSI.
func (p *devicePlatform) SignalMSI(addr uint64, data uint32) error {
	return p.m.vm.SignalMSI(addr, data)
}

// SetINTx drives the device's share of a level-triggered line.
func (p *devicePlatform) SetINTx(gsi uint32, asserted bool) { p.m.intx.set(p.dev, gsi, asserted) }

// StartWorker runs serve on a goroutine locked to a thread named for the
// queue, under SCHED_NORMAL where the machine runs its I/O batch: a worker
// serves one request at a time while the guest waits for it
// (decisions/0001).
func (p *devicePlatform) StartWorker(q, queues int, serve func()) {
	name := p.thread
	if name != "" && queues > 1 {
		name = fmt.Sprintf("%s-q%d", name, q)
	}
	interactive := p.m.tune.batchIO
	go func() {
		if name != "" {
			if err := osthread.Lock(name); err != nil {
				slog.Debug("queue worker thread", "thread", name, "err", err)
			}
		} else {
			runtime.LockOSThread()
		}
		if interactive {
			if err := osthread.Interactive(); err != nil {
				slog.Warn("queue worker thread policy", "thread", name, "err", err)
			}
		}
		serve()
	}()
}
