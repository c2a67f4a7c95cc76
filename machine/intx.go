package machine

import (
	"log/slog"
	"sync"

	"github.com/govm/govm/acpi"
	"github.com/govm/govm/kvm"
	"github.com/govm/govm/pci"
)

// Legacy PCI interrupts (INTx): the INTA# of the device in slot s drives
// I/O APIC input pciINTxBase + (s-1) mod pciINTxLines, as the ACPI _PRT
// says. Inputs 16-23 are the I/O APIC's beyond the ISA range, level-
// triggered and shared when more than eight devices are present.
const (
	pciINTxBase  = 16
	pciINTxLines = 8
)

// slotGSI is the GSI of slot's INTA#.
func slotGSI(slot int) uint32 { return pciINTxBase + uint32(slot-1)%pciINTxLines }

// pciRoutes is the _PRT for every device slot on bus 0 (slot 0 is the
// host bridge).
func pciRoutes() []acpi.PCIRoute {
	var r []acpi.PCIRoute
	for s := 1; s < pci.Slots; s++ {
		r = append(r, acpi.PCIRoute{Slot: uint8(s), GSI: slotGSI(s)})
	}
	return r
}

// intxLines drives shared level-triggered lines: a line is high while at
// least one device asserts it (a wired OR), so one device lowering its
// share does not lower another's.
type intxLines struct {
	drive func(gsi uint32, high bool) error // KVM_IRQ_LINE
	mu    sync.Mutex
	count map[uint32]int
	mine  map[intxKey]bool
}

type intxKey struct {
	gsi uint32
	dev any
}

func newINTxLines(vm *kvm.VM) *intxLines {
	return &intxLines{drive: vm.IRQLine, count: map[uint32]int{}, mine: map[intxKey]bool{}}
}

// set records dev's level on gsi and drives the line when the OR changes.
func (l *intxLines) set(dev any, gsi uint32, asserted bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := intxKey{gsi, dev}
	if l.mine[k] == asserted {
		return
	}
	l.mine[k] = asserted
	before := l.count[gsi]
	if asserted {
		l.count[gsi]++
	} else {
		l.count[gsi]--
	}
	if (before == 0) != (l.count[gsi] == 0) {
		if err := l.drive(gsi, asserted); err != nil {
			slog.Warn("INTx line", "gsi", gsi, "err", err)
		}
	}
}
