// Package confine narrows what a running govm may ask of the host kernel:
// once the VM is built, a seccomp-BPF allow-list on every thread, with
// no_new_privs, and (as root) the capabilities setup needed dropped.
//
// The filter is assembled by github.com/elastic/go-seccomp-bpf (pure Go,
// no libseccomp) from the one table in allowlist.go and installed with
// SECCOMP_FILTER_FLAG_TSYNC, so the Go runtime's threads and those it
// starts later all carry it. Go moves goroutines between threads and its
// runtime does its own work (heap growth, waking and starting threads) on
// whichever thread runs, so the list is one per process, not per thread
// as Firecracker's are (docs/decisions/0010-seccomp.md).
package confine

import (
	"errors"
	"fmt"

	seccomp "github.com/elastic/go-seccomp-bpf"
)

// Mode is what the filter does with a system call not on the list.
type Mode int

const (
	// Kill: the call does not run; the thread gets SIGSYS, which Go's
	// runtime reports ("SIGSYS: bad system call" and the stack of the
	// goroutine that made the call) before exiting with ExitKilled.
	Kill Mode = iota
	// Log: the call runs and the kernel logs it (audit type 1326,
	// syscall=N), for finding what a new code path needs.
	Log
	// Off installs nothing.
	Off
)

// ExitKilled is govm's exit status after a forbidden call: Go's runtime
// exits with 2 on a fatal signal.
const ExitKilled = 2

// String is the mode as --seccomp names it.
func (m Mode) String() string {
	switch m {
	case Kill:
		return "on"
	case Log:
		return "log"
	}
	return "off"
}

// ParseMode reads --seccomp's value.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "on", "kill", "":
		return Kill, nil
	case "log":
		return Log, nil
	case "off":
		return Off, nil
	}
	return Off, fmt.Errorf("--seccomp=%s: want on, log or off", s)
}

// ErrUnsupported is returned when the kernel has no seccomp filters.
var ErrUnsupported = errors.New("seccomp filters are not supported by this kernel")

// Install puts the allow-list on every thread of the process, in mode m,
// with no_new_privs. It cannot be undone.
func Install(m Mode) error {
	if m == Off {
		return nil
	}
	if !seccomp.Supported() {
		return ErrUnsupported
	}
	f := seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync,
		Policy:     Policy(m),
	}
	if err := seccomp.LoadFilter(f); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	return nil
}

// Policy is the allow-list as a go-seccomp-bpf policy whose default
// action is mode m's.
func Policy(m Mode) seccomp.Policy {
	def := seccomp.ActionTrap
	if m == Log {
		def = seccomp.ActionLog
	}
	g := seccomp.SyscallGroup{Action: seccomp.ActionAllow}
	for _, e := range allowList {
		if len(e.args) == 0 {
			g.Names = append(g.Names, e.name)
			continue
		}
		op := seccomp.Equal
		if e.bits {
			op = seccomp.BitsSet
		}
		for _, a := range e.args {
			g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{
				Name: e.name,
				Conditions: seccomp.ArgumentConditions{{
					Argument: e.arg, Operation: op, Value: uint64(a.value),
				}},
			})
		}
	}
	return seccomp.Policy{DefaultAction: def, Syscalls: []seccomp.SyscallGroup{g}}
}
