package virtio

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/osthread"
)

// notifyWidth is the width of a queue notification write: the driver
// writes the 16-bit queue index (4.1.4.4).
const notifyWidth = 2

// resetQueues returns every queue to its initial, disabled state.
func (p *PCIDevice) resetQueues() {
	for i := range p.queues {
		p.queues[i] = pciQueue{size: p.dev.QueueMax(), efd: -1}
	}
}

// activateLocked validates the enabled queues, hands them to the device
// and starts serving them (DRIVER_OK, 3.1.1 step 8); p.mu is held.
func (p *PCIDevice) activateLocked() error {
	qs := make([]*Queue, len(p.queues))
	for i := range p.queues {
		pq := &p.queues[i]
		pq.q.Size = pq.size
		pq.q.EventIdx = p.drvFeatures&FeatureEventIdx != 0
		pq.q.Observe = p.seeds.observer(p.dev.Type(), i, p.drvFeatures)
		if !pq.enabled {
			continue
		}
		if err := pq.q.Validate(p.mem, p.dev.QueueMax()); err != nil {
			return fmt.Errorf("queue %d: %w", i, err)
		}
		qs[i] = &pq.q
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
	if err := p.dev.Activate(p.mem, p.drvFeatures, qs, p.irq.queue); err != nil {
		p.closeKicks()
		if stopFd >= 0 {
			unix.Close(stopFd)
		}
		return err
	}
	p.stop.Store(false)
	p.irq.quiet.Store(false)
	if looper != nil {
		// A Looper waits in Go's poller and needs no thread of its own
		// (see Looper).
		p.stopFd = stopFd
		p.workers.Add(1)
		go p.loop(looper, kicks, stopFd)
	} else {
		for i, efd := range kicks {
			if efd >= 0 {
				p.workers.Add(1)
				p.plat.StartWorker(i, len(p.queues), func() { p.worker(proc, i, efd) })
			}
		}
	}
	p.phase = phaseLive
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
// notify address, so a kick costs no exit to userspace; p.mu is held.
func (p *PCIDevice) bindNotify() {
	for i := range p.queues {
		pq := &p.queues[i]
		if pq.efd < 0 || pq.notifyAt != 0 {
			continue
		}
		addr := p.mapped + offNotify + uint64(i*notifyMult)
		if err := p.plat.IOEventFD(pq.efd, addr, notifyWidth, false); err != nil {
			slog.Debug("virtio-pci: ioeventfd refused; kicks will exit to userspace", "dev", p.name, "err", err)
			continue
		}
		pq.notifyAt = addr
	}
}

// unbindNotify removes the ioeventfds; p.mu is held.
func (p *PCIDevice) unbindNotify() {
	for i := range p.queues {
		pq := &p.queues[i]
		if pq.notifyAt != 0 {
			_ = p.plat.IOEventFD(pq.efd, pq.notifyAt, notifyWidth, true)
			pq.notifyAt = 0
		}
	}
}

// kick wakes queue q's worker for a notification that reached govm (no
// ioeventfd bound).
func (p *PCIDevice) kick(q int) {
	p.mu.Lock()
	efd := -1
	if q < len(p.queues) && p.phase == phaseLive {
		efd = p.queues[q].efd
	}
	if efd >= 0 {
		signalEventfd(efd)
	}
	p.mu.Unlock()
}

// signalEventfd adds one to an eventfd's counter.
func signalEventfd(fd int) {
	one := [8]byte{1}
	_, _ = unix.Write(fd, one[:])
}

// worker serves queue q each time its eventfd is signalled, until a reset.
func (p *PCIDevice) worker(dev Processor, q, efd int) {
	defer p.workers.Done()
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

// loop runs a Looper until the reset signals stop.
func (p *PCIDevice) loop(dev Looper, kicks []int, stop int) {
	defer p.workers.Done()
	if err := dev.Loop(kicks, stop); err != nil {
		p.driverBroke(-1, err)
	}
}

// driverBroke marks the device as needing reset after the driver broke
// the rules on queue q (-1: the device does not say which).
func (p *PCIDevice) driverBroke(q int, err error) {
	p.warn("virtio: device needs reset", "queue", q, "err", err)
	p.mu.Lock()
	if p.phase == phaseLive {
		p.needsResetLocked()
	}
	p.mu.Unlock()
}

// needsResetLocked sets DEVICE_NEEDS_RESET and tells the driver through
// the configuration-change interrupt (2.1.2); p.mu is held.
func (p *PCIDevice) needsResetLocked() {
	p.status |= StatusNeedsReset
	p.configGen++
	p.irq.configChanged()
}

// resetLocked stops the workers and returns the device to its initial
// state (2.4); p.mu is held. The lock is released while the workers
// finish, with the device in phaseResetting, which ignores register
// writes and never binds notifications.
func (p *PCIDevice) resetLocked() {
	if p.phase == phaseResetting {
		return
	}
	if p.phase == phaseLive {
		p.phase = phaseResetting
		p.stop.Store(true)
		p.irq.quiet.Store(true)
		p.unbindNotify()
		if p.stopFd >= 0 {
			// A Looper stops on its stop eventfd alone: a write to its
			// kick eventfds would read as the driver's kick and have it
			// serve the queues once more while the device resets.
			signalEventfd(p.stopFd)
		} else {
			// Queue workers wake on their kick and then see stop.
			for i := range p.queues {
				if efd := p.queues[i].efd; efd >= 0 {
					signalEventfd(efd)
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
	p.resetQueues()
	p.phase = phaseConfig
	p.status, p.drvFeatures, p.devFeatSel, p.drvFeatSel, p.queueSel = 0, 0, 0, 0, 0
	p.irq.reset()
}
