package kvm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// VCPU is a KVM virtual CPU file descriptor and its mapped run area.
// Run must be called from one OS thread (runtime.LockOSThread); Kick may be
// called from any goroutine.
type VCPU struct {
	fd  int
	id  int
	run []byte
}

// ID is the vCPU index (its initial APIC ID).
func (v *VCPU) ID() int { return v.id }

// Close unmaps the run area and closes the descriptor.
func (v *VCPU) Close() error {
	if v.run != nil {
		unix.Munmap(v.run)
		v.run = nil
	}
	return unix.Close(v.fd)
}

// ErrInterrupted is returned by Run when KVM_RUN returned without an exit to
// serve: interrupted by a signal or immediate_exit (EINTR), or an AP that
// was woken by INIT/SIPI and must simply enter again (EAGAIN). The caller
// checks its own stop condition and calls Run again if it wants to go on.
var ErrInterrupted = errors.New("KVM_RUN interrupted")

// Run enters the guest and returns the decoded exit. KVM_RUN errors other
// than EINTR are returned wrapped; nothing is dropped.
func (v *VCPU) Run() (Exit, error) {
	if err := runOnce(v.fd); err != nil {
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			return Exit{Reason: ExitIntr}, ErrInterrupted
		}
		return Exit{}, fmt.Errorf("KVM_RUN on vCPU %d: %w", v.id, err)
	}
	return DecodeExit(v.run)
}

// SetImmediateExit sets or clears kvm_run.immediate_exit. While it is set,
// KVM_RUN returns EINTR at once instead of entering the guest.
func (v *VCPU) SetImmediateExit(on bool) {
	setImmediateExit(v.run, on)
}

// GetRegs reads the general-purpose registers.
func (v *VCPU) GetRegs() (Regs, error) {
	var r Regs
	if _, err := ioctlPtr(v.fd, reqGetRegs, &r); err != nil {
		return r, fmt.Errorf("KVM_GET_REGS: %w", err)
	}
	return r, nil
}

// SetRegs writes the general-purpose registers.
func (v *VCPU) SetRegs(r Regs) error {
	if _, err := ioctlPtr(v.fd, reqSetRegs, &r); err != nil {
		return fmt.Errorf("KVM_SET_REGS: %w", err)
	}
	return nil
}

// GetSregs reads the special registers.
func (v *VCPU) GetSregs() (Sregs, error) {
	var s Sregs
	if _, err := ioctlPtr(v.fd, reqGetSregs, &s); err != nil {
		return s, fmt.Errorf("KVM_GET_SREGS: %w", err)
	}
	return s, nil
}

// SetSregs writes the special registers.
func (v *VCPU) SetSregs(s Sregs) error {
	if _, err := ioctlPtr(v.fd, reqSetSregs, &s); err != nil {
		return fmt.Errorf("KVM_SET_SREGS: %w", err)
	}
	return nil
}

// SetFPU writes the x87/SSE state.
func (v *VCPU) SetFPU(f FPU) error {
	if _, err := ioctlPtr(v.fd, reqSetFPU, &f); err != nil {
		return fmt.Errorf("KVM_SET_FPU: %w", err)
	}
	return nil
}

// GetLAPIC reads the local APIC register page.
func (v *VCPU) GetLAPIC() (LAPICState, error) {
	var l LAPICState
	if _, err := ioctlPtr(v.fd, reqGetLAPIC, &l); err != nil {
		return l, fmt.Errorf("KVM_GET_LAPIC: %w", err)
	}
	return l, nil
}

// SetLAPIC writes the local APIC register page.
func (v *VCPU) SetLAPIC(l LAPICState) error {
	if _, err := ioctlPtr(v.fd, reqSetLAPIC, &l); err != nil {
		return fmt.Errorf("KVM_SET_LAPIC: %w", err)
	}
	return nil
}

// SetCPUID sets the CPUID leaves the guest sees.
func (v *VCPU) SetCPUID(entries []CPUIDEntry) error {
	hdr := cpuid2Header{NEnt: uint32(len(entries))}
	buf := packFlex(&hdr, entries, len(entries))
	if _, err := ioctlBuf(v.fd, reqSetCPUID2, buf); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2: %w", err)
	}
	return nil
}

// SetMSRs writes model-specific registers.
func (v *VCPU) SetMSRs(entries []MSREntry) error {
	if len(entries) == 0 {
		return nil
	}
	hdr := msrsHeader{NMSRs: uint32(len(entries))}
	n, err := ioctlBuf(v.fd, reqSetMSRs, packFlex(&hdr, entries, len(entries)))
	if err != nil {
		return fmt.Errorf("KVM_SET_MSRS: %w", err)
	}
	if n != len(entries) {
		return fmt.Errorf("KVM_SET_MSRS: set %d of %d (MSR %#x refused)", n, len(entries), entries[n].Index)
	}
	return nil
}

// GetMPState reads whether the vCPU runs, halts or waits for INIT/SIPI.
func (v *VCPU) GetMPState() (MPState, error) {
	var s uint32
	if _, err := ioctlPtr(v.fd, reqGetMPState, &s); err != nil {
		return 0, fmt.Errorf("KVM_GET_MP_STATE: %w", err)
	}
	return MPState(s), nil
}

// GetVCPUEvents reads pending and injected exceptions, interrupts and NMIs.
func (v *VCPU) GetVCPUEvents() (VCPUEvents, error) {
	var e VCPUEvents
	if _, err := ioctlPtr(v.fd, reqGetVCPUEvents, &e); err != nil {
		return e, fmt.Errorf("KVM_GET_VCPU_EVENTS: %w", err)
	}
	return e, nil
}

// GetMSRs reads the model-specific registers whose indexes are given.
func (v *VCPU) GetMSRs(indexes ...uint32) ([]MSREntry, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	hdr := msrsHeader{NMSRs: uint32(len(indexes))}
	entries := make([]MSREntry, len(indexes))
	for i, idx := range indexes {
		entries[i].Index = idx
	}
	buf := packFlex(&hdr, entries, len(entries))
	n, err := ioctlBuf(v.fd, reqGetMSRs, buf)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_MSRS: %w", err)
	}
	if n != len(indexes) {
		return nil, fmt.Errorf("KVM_GET_MSRS: read %d of %d (MSR %#x refused)", n, len(indexes), indexes[n])
	}
	return unpackFlex[msrsHeader, MSREntry](buf, &hdr, len(indexes)), nil
}
