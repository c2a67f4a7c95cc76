package machine

import (
	"fmt"

	"github.com/govm/govm/bus"
	"github.com/govm/govm/kvm"
)

// StopReason says why a VM stopped.
type StopReason int

const (
	// StopNone: keep running.
	StopNone StopReason = iota
	// StopPoweroff: the guest powered off (ACPI S5 or a KVM shutdown event).
	StopPoweroff
	// StopReboot: the guest asked for a reset (ACPI reset register, i8042
	// pulse, KVM reset event). govm does not restart the guest.
	StopReboot
	// StopCrash: the vCPU cannot go on: triple fault, KVM internal or
	// entry failure, an exit govm cannot serve.
	StopCrash
	// StopCanceled: the VMM stopped the VM (context canceled: a timeout,
	// the user quitting, a signal).
	StopCanceled
	// StopError: govm itself failed (an ioctl error, a device error).
	StopError
	// StopGuestExit: the guest wrote an exit code to the exit port
	// (Result.Code).
	StopGuestExit
	// StopPanic: the guest kernel reported a panic through pvpanic.
	StopPanic
)

var stopNames = [...]string{"running", "poweroff", "reboot", "crash", "canceled", "error", "exit", "panic"}

func (r StopReason) String() string {
	if int(r) < len(stopNames) {
		return stopNames[r]
	}
	return fmt.Sprintf("StopReason(%d)", int(r))
}

// Internal error suberrors (KVM_INTERNAL_ERROR_*).
var internalErrors = map[uint32]string{
	1: "emulation failure",
	2: "simultaneous exceptions",
	3: "delivery event",
	4: "unexpected exit reason",
}

// handleExit serves one decoded exit against the buses. It is a pure
// function of the exit and the devices, so it is tested with made-up exits.
// It returns StopNone to re-enter the guest, or why the vCPU must stop and a
// one-line detail.
func handleExit(e *kvm.Exit, pio, mmio *bus.Bus) (StopReason, string) {
	switch e.Reason {
	case kvm.ExitIO:
		size := int(e.Size)
		for i := 0; i < int(e.Count); i++ {
			chunk := e.Data[i*size : (i+1)*size]
			if e.Write {
				pio.Write(uint64(e.Port), chunk)
			} else {
				pio.Read(uint64(e.Port), chunk)
			}
		}
		return StopNone, ""
	case kvm.ExitMMIO:
		if e.Write {
			mmio.Write(e.Addr, e.Data)
		} else {
			mmio.Read(e.Addr, e.Data)
		}
		return StopNone, ""
	case kvm.ExitIntr, kvm.ExitIRQWindowOpen:
		return StopNone, ""
	case kvm.ExitHLT:
		// With the in-kernel irqchip KVM waits for the interrupt itself;
		// a halt that reaches govm has nothing to wake it.
		return StopCrash, "vCPU halted with no interrupt controller to wake it"
	case kvm.ExitShutdown:
		return StopCrash, "triple fault (KVM_EXIT_SHUTDOWN)"
	case kvm.ExitSystemEvent:
		switch e.EventType {
		case kvm.SystemEventShutdown:
			return StopPoweroff, "system event: shutdown"
		case kvm.SystemEventReset:
			return StopReboot, "system event: reset"
		default:
			return StopCrash, fmt.Sprintf("system event %d (crash)", e.EventType)
		}
	case kvm.ExitInternalError:
		name := internalErrors[e.Suberror]
		if name == "" {
			name = "unknown"
		}
		return StopCrash, fmt.Sprintf("KVM internal error, suberror %d (%s)", e.Suberror, name)
	case kvm.ExitFailEntry:
		return StopCrash, fmt.Sprintf("KVM entry failure, hardware reason %#x", e.HardwareReason)
	}
	return StopCrash, fmt.Sprintf("unhandled exit %s", e.Reason)
}
