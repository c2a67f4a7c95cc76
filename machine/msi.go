package machine

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/kvm"
)

// MSI delivery through irqfd: each MSI-X vector a device uses gets a GSI
// routed to its message (KVM_SET_GSI_ROUTING) and an eventfd bound to that
// GSI (KVM_IRQFD), so raising it is one eventfd write from the device's
// goroutine and KVM injects it, with no VM ioctl per interrupt (KVM API
// 4.52 and 4.75).

// KVM's irqchip numbers in routing entries (KVM_IRQCHIP_*), and the pins
// it routes by default (virt/kvm/irqchip.c's default table: GSIs 0-15 to
// both PICs and the I/O APIC, 16-23 to the I/O APIC). Setting a routing
// table replaces that default, so it is written out here.
const (
	irqchipPICMaster = 0
	irqchipPICSlave  = 1
	irqchipIOAPIC    = 2
	picPins          = 16
	ioapicPins       = 24
	// maxGSI bounds the GSIs handed out for MSIs (KVM_MAX_IRQ_ROUTES is
	// 4096 on x86).
	maxGSI = 4096
)

// msiRouter owns the VM's GSI routing table.
type msiRouter struct {
	vm   *kvm.VM
	mu   sync.Mutex
	msis map[uint32]kvm.IRQRoutingEntry // by GSI
	free []uint32                       // GSIs released, reused first
	next uint32
}

func newMSIRouter(vm *kvm.VM) *msiRouter {
	return &msiRouter{vm: vm, msis: map[uint32]kvm.IRQRoutingEntry{}, next: ioapicPins}
}

// defaultRoutes is KVM's default irqchip routing.
func defaultRoutes() []kvm.IRQRoutingEntry {
	var e []kvm.IRQRoutingEntry
	for gsi := uint32(0); gsi < ioapicPins; gsi++ {
		r := kvm.IRQRoutingEntry{GSI: gsi, Type: kvm.IRQRoutingIRQChip}
		r.U[0], r.U[1] = irqchipIOAPIC, gsi
		e = append(e, r)
		if gsi < picPins {
			p := kvm.IRQRoutingEntry{GSI: gsi, Type: kvm.IRQRoutingIRQChip}
			p.U[0], p.U[1] = irqchipPICMaster, gsi%8
			if gsi >= 8 {
				p.U[0] = irqchipPICSlave
			}
			e = append(e, p)
		}
	}
	return e
}

// table is the whole routing table: the defaults, then the MSIs by GSI.
func (r *msiRouter) table() []kvm.IRQRoutingEntry {
	t := defaultRoutes()
	gsis := make([]uint32, 0, len(r.msis))
	for g := range r.msis {
		gsis = append(gsis, g)
	}
	sort.Slice(gsis, func(i, j int) bool { return gsis[i] < gsis[j] })
	for _, g := range gsis {
		t = append(t, r.msis[g])
	}
	return t
}

func msiEntry(gsi uint32, addr uint64, data uint32) kvm.IRQRoutingEntry {
	e := kvm.IRQRoutingEntry{GSI: gsi, Type: kvm.IRQRoutingMSI}
	e.U[0], e.U[1], e.U[2] = uint32(addr), uint32(addr>>32), data
	return e
}

// msiRoute is one vector's GSI and eventfd (virtio.MSIRoute).
type msiRoute struct {
	r     *msiRouter
	gsi   uint32
	efd   int
	bound bool
	one   [8]byte
}

func (r *msiRouter) alloc() (*msiRoute, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gsi uint32
	switch {
	case len(r.free) > 0:
		gsi, r.free = r.free[len(r.free)-1], r.free[:len(r.free)-1]
	case r.next < maxGSI:
		gsi = r.next
		r.next++
	default:
		return nil, fmt.Errorf("all %d GSIs in use", maxGSI)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		r.free = append(r.free, gsi)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	rt := &msiRoute{r: r, gsi: gsi, efd: efd}
	rt.one[0] = 1
	return rt, nil
}

// Set routes the GSI to the message (addr, data) and binds the eventfd
// the first time.
func (rt *msiRoute) Set(addr uint64, data uint32) error {
	r := rt.r
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.msis[rt.gsi]
	r.msis[rt.gsi] = msiEntry(rt.gsi, addr, data)
	if err := r.vm.SetGSIRouting(r.table()); err != nil {
		if had {
			r.msis[rt.gsi] = old
		} else {
			delete(r.msis, rt.gsi)
		}
		return err
	}
	if !rt.bound {
		if err := r.vm.IRQFD(rt.efd, rt.gsi, false); err != nil {
			return err
		}
		rt.bound = true
	}
	return nil
}

// Fire raises the interrupt: one eventfd write, no VM ioctl. A full
// counter (EAGAIN) means interrupts are already pending, which is as good.
func (rt *msiRoute) Fire() error {
	_, err := unix.Write(rt.efd, rt.one[:])
	if errors.Is(err, unix.EAGAIN) {
		return nil
	}
	return err
}

// Close unbinds the eventfd and frees the GSI.
func (rt *msiRoute) Close() {
	r := rt.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt.bound {
		_ = r.vm.IRQFD(rt.efd, rt.gsi, true)
	}
	unix.Close(rt.efd)
	if _, ok := r.msis[rt.gsi]; ok {
		delete(r.msis, rt.gsi)
		_ = r.vm.SetGSIRouting(r.table())
	}
	r.free = append(r.free, rt.gsi)
}
