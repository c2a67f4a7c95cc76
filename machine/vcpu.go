package machine

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/boot"
	"github.com/govm/govm/kvm"
	"github.com/govm/govm/osthread"
)

type vcpu struct {
	id  int
	kvm *kvm.VCPU
	tid atomic.Int32 // OS thread running it, 0 until started
	// lastRIP is where the vCPU was when its goroutine ended.
	lastRIP atomic.Uint64
	// exits counts exits by reason (indexes below maxCountedExit).
	exits [maxCountedExit]atomic.Uint64
	// yields counts the loop's passes through Go's scheduler.
	yields atomic.Uint64
}

// maxCountedExit bounds the exit reasons counted per vCPU.
const maxCountedExit = 64

// runVCPU is the vCPU loop: one goroutine per vCPU, locked to its thread so
// KVM's per-thread state and the kick signal reach the right place.
func (m *Machine) runVCPU(v *vcpu) {
	if err := osthread.Lock(fmt.Sprintf("govm-vcpu%d", v.id)); err != nil {
		slog.Debug("vCPU thread", "vcpu", v.id, "err", err)
	}
	v.tid.Store(int32(unix.Gettid()))
	if m.tune.batchIO {
		if err := osthread.Interactive(); err != nil {
			slog.Warn("vCPU thread policy", "vcpu", v.id, "err", err)
		}
	}
	defer func() { v.lastRIP.Store(v.rip()) }()
	if v.id < len(m.cfg.CPUAffinity) {
		var set unix.CPUSet
		set.Set(m.cfg.CPUAffinity[v.id])
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			slog.Warn("pinning vCPU thread", "vcpu", v.id, "cpu", m.cfg.CPUAffinity[v.id], "err", err)
		}
	}
	if v.id == 0 {
		var now unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &now) == nil {
			m.firstRunAt.Store(now.Nano())
		}
		if !m.cfg.Started.IsZero() {
			m.firstRun.Store(int64(time.Since(m.cfg.Started)))
		}
	}
	y := osthread.Yielder{Every: m.tune.yieldEvery} // KVM_RUN is a system call that never parks
	for !m.stopping.Load() {
		if y.Maybe(time.Now()) {
			v.yields.Add(1)
		}
		e, err := v.kvm.Run()
		if errors.Is(err, kvm.ErrInterrupted) {
			// A kick or Go's preemption signal (SIGURG): check for a stop
			// and go back in.
			continue
		}
		if err != nil {
			m.stop(Result{Reason: StopError, Detail: err.Error(), Err: err, VCPU: v.id, RIP: v.rip()})
			return
		}
		if e.Reason < maxCountedExit {
			v.exits[e.Reason].Add(1)
		}
		if reason, detail := handleExit(&e, m.pio, m.mmio); reason != StopNone {
			m.stop(Result{Reason: reason, Detail: detail, VCPU: v.id, RIP: v.rip()})
			return
		}
	}
}

func (v *vcpu) rip() uint64 {
	r, err := v.kvm.GetRegs()
	if err != nil {
		return 0
	}
	return r.RIP
}

// kickInterval is how often a vCPU that has not yet left KVM_RUN is
// signalled again while stopping.
const kickInterval = 10 * time.Millisecond

// kickAll makes every vCPU leave KVM_RUN and waits for their goroutines.
// immediate_exit covers a vCPU about to enter KVM_RUN; the signal (SIGURG,
// which Go's runtime already handles harmlessly) interrupts one inside it.
func (m *Machine) kickAll(wg *sync.WaitGroup) {
	for _, v := range m.vcpus {
		v.kvm.SetImmediateExit(true)
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	pid := unix.Getpid()
	for {
		for _, v := range m.vcpus {
			if tid := v.tid.Load(); tid != 0 {
				_ = unix.Tgkill(pid, int(tid), unix.SIGURG)
			}
		}
		select {
		case <-finished:
			return
		case <-time.After(kickInterval):
		}
	}
}

// setBootState loads the boot vCPU's registers from the state the loader
// returned, and sets up its local APIC's LINT pins.
func setBootState(v *kvm.VCPU, st *boot.CPUState) error {
	sregs, err := v.GetSregs()
	if err != nil {
		return err
	}
	seg := func(s boot.Segment) kvm.Segment {
		b := func(x bool) uint8 {
			if x {
				return 1
			}
			return 0
		}
		return kvm.Segment{
			Base: s.Base, Limit: s.Limit, Selector: s.Selector, Type: s.Type,
			Present: b(s.Present), DPL: s.DPL, DB: b(s.DB), S: b(s.S), L: b(s.L),
			G: b(s.G), AVL: b(s.AVL),
		}
	}
	sregs.CS = seg(st.CS)
	ds := seg(st.DS)
	sregs.DS, sregs.ES, sregs.FS, sregs.GS, sregs.SS = ds, ds, ds, ds, ds
	sregs.TR = seg(st.TR)
	sregs.GDT = kvm.DTable{Base: st.GDTBase, Limit: st.GDTLimit}
	sregs.IDT = kvm.DTable{Base: st.IDTBase, Limit: st.IDTLimit}
	sregs.CR0, sregs.CR3, sregs.CR4, sregs.EFER = st.CR0, st.CR3, st.CR4, st.EFER
	if err := v.SetSregs(sregs); err != nil {
		return err
	}
	if err := v.SetRegs(kvm.Regs{
		RIP: st.RIP, RSP: st.RSP, RBP: st.RBP, RSI: st.RSI, RFLAGS: st.RFLAGS,
	}); err != nil {
		return err
	}
	if err := v.SetFPU(kvm.FPU{FCW: fpuControlDefault, MXCSR: mxcsrDefault}); err != nil {
		return err
	}
	return setLINT(v)
}

// setMSRs zeroes the TSC on every vCPU, so all start in step, turns on
// fast string operations, and makes all memory write-back cacheable by
// default, as firmware would.
func setMSRs(v *kvm.VCPU) error {
	return v.SetMSRs([]kvm.MSREntry{
		{Index: msrTSC, Data: 0},
		{Index: msrMiscEnable, Data: miscEnableFastStr},
		{Index: msrMTRRDefType, Data: mtrrDefTypeEnable | mtrrTypeWriteBack},
	})
}

// x87 and SSE reset values (SDM vol. 1, 8.1.5 and 10.2.3).
const (
	fpuControlDefault = 0x37f
	mxcsrDefault      = 0x1f80
)

// setLINT sets the boot CPU's LINT0 to ExtINT but masked, and LINT1 to
// NMI. The ACPI tables describe a hardware-reduced platform with no 8259,
// so Linux never programs the (in-kernel) PIC; but KVM routes every ISA
// interrupt to it as well as to the I/O APIC. With LINT0 unmasked, as KVM
// leaves the boot CPU, Linux keeps "virtual wire" ExtINT on, and each
// serial interrupt also arrives through the unprogrammed PIC with a vector
// in the exception range: the guest then dies at a random point.
func setLINT(v *kvm.VCPU) error {
	l, err := v.GetLAPIC()
	if err != nil {
		return err
	}
	set := func(reg int, mode uint32) {
		x := uint32(l.Regs[reg]) | uint32(l.Regs[reg+1])<<8 | uint32(l.Regs[reg+2])<<16 | uint32(l.Regs[reg+3])<<24
		x = x&^(lapicModeMask|lapicLVTMasked) | mode
		l.Regs[reg], l.Regs[reg+1], l.Regs[reg+2], l.Regs[reg+3] = byte(x), byte(x>>8), byte(x>>16), byte(x>>24)
	}
	set(lapicLVT0, lapicModeExtINT|lapicLVTMasked)
	set(lapicLVT1, lapicModeNMI)
	if err := v.SetLAPIC(l); err != nil {
		return fmt.Errorf("LINT setup: %w", err)
	}
	return nil
}
