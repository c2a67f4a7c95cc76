package e2e

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// errEmulatorFault marks a nested run spoiled by the emulated L1 rather
// than by govm: see emulatorFault.
var errEmulatorFault = errors.New("nested emulator fault")

// tcgFault matches the one crash the emulated CPU produces in L1 and L2
// kernels alike: a page fault on the first per-CPU access in the
// exception entry, recursing until the stack guard page (seen with any
// VMM, in ~1 of 5 nested SMP boots, never on hardware).
var tcgFault = regexp.MustCompile(`stack guard page was hit`)

// vcpuReport matches the vCPU lines of govm's timeout report.
var vcpuReport = regexp.MustCompile(`(?m)^\s*vCPU \d+: .*$`)

// inService matches a non-empty in-service vector list in a vCPU line.
var inService = regexp.MustCompile(` isr 0x[0-9a-f]`)

// maskedIRQDeadlock reports govm's timeout report of a guest with one
// vCPU that is runnable, has interrupts off, has an interrupt in service
// (it is inside a handler) and sits in a spin-wait loop (PAUSE is the
// instruction before RIP): the handler waits for a lock that only the
// context it interrupted can release, on the same CPU. Linux takes every
// lock an interrupt handler needs with interrupts off, so this happens
// only when an interrupt is delivered while the guest has them off, which
// the nested emulator does (docs/nested-tcg-fault.md) and KVM on hardware
// does not; govm injects no interrupts itself (the in-kernel LAPIC does).
func maskedIRQDeadlock(out string) bool {
	if !strings.Contains(out, "govm: timeout after") {
		return false
	}
	lines := vcpuReport.FindAllString(out, -1)
	if len(lines) != 1 {
		return false
	}
	l := lines[0]
	return strings.Contains(l, " if=0 runnable;") && inService.MatchString(l) && strings.Contains(l, "f3 90 <")
}

// emulatorFault says why a finished nested run is not evidence about govm,
// or "" if it is: the TCG fault signature on the console of a guest that
// was not asked to crash, or an L2 guest that died (crash, panic or hang)
// before its init agent started.
func emulatorFault(c Case, res *Result) string {
	// The signatures hold for any output, also that of guests a case's
	// After runs (the benchmarks).
	if tcgFault.MatchString(res.Output) {
		return "the TCG per-CPU page-fault recursion"
	}
	if maskedIRQDeadlock(res.Output) {
		return "an interrupt taken with interrupts off: the single vCPU spins on a lock its interrupted context holds"
	}
	if c.Command != "run" {
		return ""
	}
	agent := false
	for _, a := range c.Args {
		agent = agent || strings.Contains(a, "{initrd}")
	}
	if agent && !strings.Contains(res.Output, "GOVM-AGENT-START") {
		switch res.GovmExit {
		case 33, 34, 35:
			return fmt.Sprintf("the L2 kernel died before its init (govm exit %d)", res.GovmExit)
		}
	}
	return ""
}
