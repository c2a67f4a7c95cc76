package machine

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/govm/govm/kvm"
	"github.com/govm/govm/mem"
)

// When a VM is stopped from outside (a timeout or a signal), the question
// is why the guest made no progress: a vCPU spinning, or halted waiting for
// an interrupt that never came, or a device that never answered. State
// reads what the vCPUs and devices hold at that moment.

// rflagsIF is the interrupt-enable flag (SDM Vol. 1, 3.4.3).
const rflagsIF = 1 << 9

// The instruction bytes State shows around each vCPU's RIP.
const codeBefore, codeAfter = 8, 8

// LAPIC is the part of a local APIC's state that says whether an
// interrupt can arrive.
type LAPIC struct {
	Enabled   bool   // software-enabled (SVR bit 8)
	TPR, PPR  uint8  // task and processor priority
	IRR, ISR  []int  // vectors requested and in service, highest first
	TimerLVT  uint32 // the LVT timer entry
	TimerInit uint32 // initial count (one-shot and periodic modes)
	TimerCur  uint32 // current count
}

func lapicReg(l *kvm.LAPICState, off int) uint32 {
	return binary.LittleEndian.Uint32(l.Regs[off:])
}

// vectors lists the vectors set in the eight words from base, highest first.
func vectors(l *kvm.LAPICState, base int) []int {
	var v []int
	for w := 7; w >= 0; w-- {
		bits := lapicReg(l, base+w*lapicVectorReg)
		for b := 31; b >= 0; b-- {
			if bits&(1<<b) != 0 {
				v = append(v, w*32+b)
			}
		}
	}
	return v
}

// DecodeLAPIC reads the registers State reports from a KVM_GET_LAPIC page.
func DecodeLAPIC(l *kvm.LAPICState) LAPIC {
	return LAPIC{
		Enabled:   lapicReg(l, lapicSVR)&lapicSVREnable != 0,
		TPR:       uint8(lapicReg(l, lapicTPR)),
		PPR:       uint8(lapicReg(l, lapicPPR)),
		IRR:       vectors(l, lapicIRR),
		ISR:       vectors(l, lapicISR),
		TimerLVT:  lapicReg(l, lapicLVTTimer),
		TimerInit: lapicReg(l, lapicTimerInit),
		TimerCur:  lapicReg(l, lapicTimerCur),
	}
}

// timer describes the LAPIC timer; tsc and deadline are the TSC and
// IA32_TSC_DEADLINE MSRs, used in TSC-deadline mode.
func (a LAPIC) timer(tsc, deadline uint64) string {
	lvt := a.TimerLVT
	masked := ""
	if lvt&lapicLVTMasked != 0 {
		masked = " masked"
	}
	vec := lvt & 0xff
	switch lvt & lapicTimerModeMask {
	case lapicTimerDeadline:
		switch {
		case deadline == 0:
			return fmt.Sprintf("tsc-deadline vec %#x%s, disarmed", vec, masked)
		case deadline <= tsc:
			return fmt.Sprintf("tsc-deadline vec %#x%s, expired %d cycles ago", vec, masked, tsc-deadline)
		default:
			return fmt.Sprintf("tsc-deadline vec %#x%s, fires in %d cycles", vec, masked, deadline-tsc)
		}
	case lapicTimerPeriodic:
		return fmt.Sprintf("periodic vec %#x%s, count %d/%d", vec, masked, a.TimerCur, a.TimerInit)
	default:
		return fmt.Sprintf("one-shot vec %#x%s, count %d/%d", vec, masked, a.TimerCur, a.TimerInit)
	}
}

func vectorList(v []int) string {
	if len(v) == 0 {
		return "-"
	}
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%#x", x)
	}
	return strings.Join(s, ",")
}

// vcpuState describes one stopped vCPU in one line. Each part that cannot
// be read is left out and named, rather than failing the rest.
func vcpuState(v *kvm.VCPU, m *mem.Memory) string {
	var b strings.Builder
	fmt.Fprintf(&b, "vCPU %d:", v.ID())
	var missing []string
	r, errRegs := v.GetRegs()
	if errRegs == nil {
		fmt.Fprintf(&b, " rip %#x if=%d", r.RIP, r.RFLAGS&rflagsIF/rflagsIF)
	} else {
		missing = append(missing, "regs")
	}
	if s, err := v.GetMPState(); err == nil {
		fmt.Fprintf(&b, " %v", s)
	} else {
		missing = append(missing, "mp-state")
	}
	if e, err := v.GetVCPUEvents(); err == nil {
		if e.Interrupt.Injected != 0 {
			fmt.Fprintf(&b, " injecting %#x", e.Interrupt.Nr)
		}
		if e.Interrupt.Shadow != 0 {
			b.WriteString(" irq-shadow")
		}
		if e.NMI.Pending != 0 || e.NMI.Injected != 0 {
			b.WriteString(" nmi-pending")
		}
		if e.Exception.Pending != 0 || e.Exception.Injected != 0 {
			fmt.Fprintf(&b, " exception %d", e.Exception.Nr)
		}
	} else {
		missing = append(missing, "events")
	}
	if l, err := v.GetLAPIC(); err == nil {
		a := DecodeLAPIC(&l)
		var tsc, deadline uint64
		if msrs, err := v.GetMSRs(msrTSC, msrTSCDeadline); err == nil {
			tsc, deadline = msrs[0].Data, msrs[1].Data
		} else {
			missing = append(missing, "msrs")
		}
		on := "on"
		if !a.Enabled {
			on = "off"
		}
		fmt.Fprintf(&b, "; lapic %s tpr %#x ppr %#x irr %s isr %s; timer %s",
			on, a.TPR, a.PPR, vectorList(a.IRR), vectorList(a.ISR), a.timer(tsc, deadline))
	} else {
		missing = append(missing, "lapic")
	}
	if sr, err := v.GetSregs(); err == nil && errRegs == nil && m != nil {
		fmt.Fprintf(&b, "; code %s", codeBytes(m, sr.CR0, sr.CR3, sr.CR4, sr.EFER, r.RIP, codeBefore, codeAfter))
	}
	if len(missing) > 0 {
		fmt.Fprintf(&b, " (unreadable: %s)", strings.Join(missing, ","))
	}
	return b.String()
}

// State describes every vCPU and virtio device, one line each. Call it
// after Run has returned, when no vCPU is inside KVM_RUN.
func (m *Machine) State() []string {
	var out []string
	for _, v := range m.vcpus {
		out = append(out, vcpuState(v.kvm, m.mem))
	}
	for _, d := range m.virtioDevs {
		out = append(out, d.State())
	}
	return out
}
