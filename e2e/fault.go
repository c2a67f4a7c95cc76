package e2e

import (
	"errors"
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

// maskedIRQDeadlock reports govm's timeout report of a guest in which a
// vCPU is runnable, has interrupts off, has an interrupt in service (it is
// inside a handler) and sits in a spin-wait loop (PAUSE is the
// instruction before RIP), while every other vCPU has interrupts on: the
// handler waits for a lock that no other CPU can hold, since Linux takes
// every lock an interrupt handler needs with interrupts off, so only the
// context it interrupted on its own CPU can. That needs an interrupt
// delivered while the guest had them off, which the nested emulator does
// (docs/nested-tcg-fault.md) and KVM on hardware does not; govm injects no
// interrupts itself (the in-kernel LAPIC does).
func maskedIRQDeadlock(out string) bool {
	if !strings.Contains(out, "govm: timeout after") {
		return false
	}
	stuck, masked := 0, 0
	for _, l := range vcpuReport.FindAllString(out, -1) {
		if !strings.Contains(l, " if=1 ") {
			masked++ // a vCPU with interrupts off may hold such a lock
		}
		if strings.Contains(l, " if=0 runnable;") && inService.MatchString(l) && strings.Contains(l, "f3 90 <") {
			stuck++
		}
	}
	return stuck == 1 && masked == 1
}

// emulatorFault says why a finished nested run is not evidence about govm,
// or "" if it is. Only the emulator's signatures count: the TCG fault's
// recursion on the console of a guest not asked to crash, or govm's
// timeout report of a single vCPU spinning in a handler with interrupts
// off. A guest that died without one (a triple fault, a panic, a hang) is
// govm's failure until shown otherwise, and fails the test with its
// console (docs/nested-tcg-fault.md); L1 crashing is judged in runNested.
func emulatorFault(res *Result) string {
	// The signatures hold for any output, also that of guests a case's
	// After runs (the benchmarks).
	if tcgFault.MatchString(res.Output) {
		return "the TCG per-CPU page-fault recursion"
	}
	if maskedIRQDeadlock(res.Output) {
		return "an interrupt taken with interrupts off: the single vCPU spins on a lock its interrupted context holds"
	}
	return ""
}
