package main

import "github.com/govm/govm/machine"

// Exit codes of `govm run`, modelled on crosvm's: 0 for a clean guest
// poweroff, small numbers for govm's own failures, 32 and up for the ways a
// guest can end badly.
const (
	ExitOK      = 0  // the guest powered off (or the user quit with Ctrl-A x)
	ExitError   = 1  // govm failed: bad arguments, missing files, no usable KVM, an ioctl error
	ExitReboot  = 32 // the guest asked for a reset (reboot); govm does not restart it
	ExitCrash   = 33 // the vCPU could not go on: triple fault, KVM internal or entry error
	ExitPanic   = 34 // the guest kernel panicked (pvpanic, or its panic line on the console)
	ExitTimeout = 35 // --timeout passed
	ExitFailOn  = 36 // the console matched --fail-on
	ExitSignal  = 130
)

const exitCodeTable = `Exit codes:
  0    the guest powered off, the console matched --expect, or Ctrl-A x
  N    the guest wrote N to the exit port (0xf4; see package guest)
  1    govm error: bad arguments, unreadable files, no usable /dev/kvm
  2    govm crashed, or made a system call its seccomp filter forbids
       (SIGSYS: bad system call, and the call's stack, on stderr)
  32   the guest rebooted (govm does not restart it)
  33   the guest crashed: triple fault, KVM internal or entry error
  34   the guest kernel panicked
  35   --timeout passed (the console's last lines go to stderr)
  36   the console matched --fail-on
  130  govm was interrupted by SIGINT or SIGTERM`

// exitCode maps how a VM ended to the process exit code.
func exitCode(r machine.Result) int {
	switch r.Reason {
	case machine.StopPoweroff:
		return ExitOK
	case machine.StopReboot:
		return ExitReboot
	case machine.StopCrash:
		return ExitCrash
	case machine.StopCanceled:
		return ExitSignal
	case machine.StopGuestExit:
		return r.Code
	case machine.StopPanic:
		return ExitPanic
	}
	return ExitError
}
