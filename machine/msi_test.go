package machine

import (
	"testing"

	"github.com/govm/govm/kvm"
	"github.com/govm/govm/kvm/kvmtest"
)

func TestDefaultRoutes(t *testing.T) {
	var ioapic, pic int
	for _, e := range defaultRoutes() {
		switch {
		case e.Type != kvm.IRQRoutingIRQChip:
			t.Fatalf("entry %+v is not an irqchip route", e)
		case e.U[0] == irqchipIOAPIC:
			if e.U[1] != e.GSI {
				t.Errorf("GSI %d to I/O APIC pin %d", e.GSI, e.U[1])
			}
			ioapic++
		default:
			if e.GSI >= picPins || e.U[1] != e.GSI%8 || (e.GSI >= 8) != (e.U[0] == irqchipPICSlave) {
				t.Errorf("GSI %d to PIC %d pin %d", e.GSI, e.U[0], e.U[1])
			}
			pic++
		}
	}
	if ioapic != ioapicPins || pic != picPins {
		t.Errorf("%d I/O APIC and %d PIC routes, want %d and %d", ioapic, pic, ioapicPins, picPins)
	}
}

// TestMSIRouteOnKVM sets up, retargets, fires and releases irqfd MSI
// routes on the host's real KVM, and checks GSIs are reused.
func TestMSIRouteOnKVM(t *testing.T) {
	kvmtest.Require(t)
	sys, err := kvm.Open(kvm.DevicePath)
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	vm, err := sys.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.CreateIRQChip(); err != nil {
		t.Skipf("no in-kernel irqchip here: %v", err)
	}
	r := newMSIRouter(vm)
	a, err := r.alloc()
	if err != nil {
		t.Fatal(err)
	}
	b, err := r.alloc()
	if err != nil {
		t.Fatal(err)
	}
	if a.gsi != ioapicPins || b.gsi != ioapicPins+1 {
		t.Errorf("GSIs %d and %d, want the first two after the I/O APIC's", a.gsi, b.gsi)
	}
	for _, rt := range []*msiRoute{a, b} {
		if err := rt.Set(0xfee0_0000, 0x4041); err != nil {
			t.Fatal(err)
		}
		if err := rt.Set(0xfee0_0000, 0x4042); err != nil {
			t.Fatalf("retargeting: %v", err)
		}
		if err := rt.Fire(); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.table()); n != ioapicPins+picPins+2 {
		t.Errorf("routing table of %d entries, want %d", n, ioapicPins+picPins+2)
	}
	a.Close()
	c, err := r.alloc()
	if err != nil {
		t.Fatal(err)
	}
	if c.gsi != a.gsi {
		t.Errorf("GSI %d after releasing %d: want it reused", c.gsi, a.gsi)
	}
	c.Close()
	b.Close()
	if n := len(r.table()); n != ioapicPins+picPins {
		t.Errorf("routing table of %d entries after closing every route, want the defaults", n)
	}
}
