package osthread

import (
	"runtime"
	"time"
)

// YieldEvery is how often a Yielder passes its goroutine through Go's
// scheduler. It is half the runtime's forcePreemptNS (10 ms,
// runtime/proc.go): the monitor (sysmon) judges a P stuck when it sees the
// same scheduling tick for that long.
const YieldEvery = 5 * time.Millisecond

// Yielder keeps a locked goroutine that lives in system calls (a vCPU in
// KVM_RUN, a device loop between reads and writes) from looking stuck to
// Go's runtime.
//
// Such a goroutine never goes through the scheduler, so its P's
// scheduling tick never moves. Once the monitor has seen the same tick for
// 10 ms, it takes the P back each time it finds the goroutine in a system
// call, hands the P to an idle thread, and drops its own sleep to 20 us
// (runtime/proc.go, retake and sysmon): from then on every system call
// that outlasts a monitor tick costs a P handoff and wakes threads that
// have nothing to do. A Gosched every YieldEvery moves the tick for the
// price of one round trip through the scheduler (docs/decisions/0006).
//
// The zero Yielder is ready; it belongs to one goroutine.
type Yielder struct {
	// Every overrides YieldEvery when positive; negative turns the
	// Yielder off (for experiments, GOVM_DEBUG_YIELD).
	Every time.Duration
	last  time.Time
	// Yields counts the Goscheds it made (for tests and statistics).
	Yields uint64
}

// Scheduled notes that the goroutine has just been through the scheduler
// on its own (it parked and woke), which moved the tick as a Gosched would.
func (y *Yielder) Scheduled(now time.Time) { y.last = now }

// Maybe calls runtime.Gosched if the goroutine has not been through the
// scheduler for YieldEvery, and reports whether it did.
func (y *Yielder) Maybe(now time.Time) bool {
	every := YieldEvery
	if y.Every != 0 {
		every = y.Every
	}
	if every < 0 {
		return false
	}
	if y.last.IsZero() {
		y.last = now
		return false
	}
	if now.Sub(y.last) < every {
		return false
	}
	runtime.Gosched()
	y.last = time.Now()
	y.Yields++
	return true
}
