package machine

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/govm/govm/hostinfo"
	"github.com/govm/govm/osthread"
)

// Environment variables that override the host-dependent tuning, for
// experiments only (docs/testing.md).
const (
	envXSave     = "GOVM_DEBUG_XSAVE"     // on, off
	envHugePages = "GOVM_DEBUG_HUGEPAGES" // on, off
	envIOSched   = "GOVM_DEBUG_IO_SCHED"  // batch, normal
	envYield     = "GOVM_DEBUG_YIELD"     // a duration, or off
)

// tuning is what the machine decides from the host once, before it makes
// anything: each field is a workaround or an optimization whose right
// value depends on the host, not on what the user asked for
// (docs/decisions/0007-host-quirks-in-machine.md).
type tuning struct {
	// xsave offers XSAVE and the state it manages to the guest
	// (decisions/0005).
	xsave bool
	// hugePages lays guest RAM out for transparent huge pages, on every
	// host (decisions/0012, which replaces 0002's exception for emulated
	// CPUs).
	hugePages bool
	// batchIO runs every thread but the vCPUs' and the disk workers'
	// under SCHED_BATCH (decisions/0001).
	batchIO bool
	// yieldEvery is how often a vCPU loop passes through Go's scheduler
	// (osthread.Yielder, decisions/0006); negative: never.
	yieldEvery time.Duration
}

// decideTuning is the machine's tuning for a host with facts host;
// getenv reads the override variables. It is pure, so it is tested for
// every kind of host without one.
func decideTuning(host hostinfo.Facts, getenv func(string) string) (tuning, error) {
	t := tuning{xsave: !host.EmulatedCPU(), hugePages: true, batchIO: true, yieldEvery: osthread.YieldEvery}
	switch v := getenv(envYield); v {
	case "":
	case "off":
		t.yieldEvery = -1
	default:
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return tuning{}, fmt.Errorf("%s=%q: want a duration or off", envYield, v)
		}
		t.yieldEvery = d
	}
	for _, o := range []struct {
		env     string
		dst     *bool
		on, off string
	}{
		{envXSave, &t.xsave, "on", "off"},
		{envHugePages, &t.hugePages, "on", "off"},
		{envIOSched, &t.batchIO, "batch", "normal"},
	} {
		switch v := getenv(o.env); v {
		case "":
		case o.on:
			*o.dst = true
		case o.off:
			*o.dst = false
		default:
			return tuning{}, fmt.Errorf("%s=%q: want %s or %s", o.env, v, o.on, o.off)
		}
	}
	return t, nil
}

// hostTuning probes the host govm runs on and decides its tuning.
func hostTuning() (tuning, hostinfo.Facts, error) {
	host := hostinfo.Probe(hostinfo.DefaultPaths)
	t, err := decideTuning(host, os.Getenv)
	return t, host, err
}

// applyProcess applies the process-wide part of the tuning before the
// vCPUs start: the scheduling policy (threads made later inherit it) and
// GOMAXPROCS (decisions/0003). A refused policy is no error: the threads
// keep Linux's default.
func (t *tuning) applyProcess(blocking int) {
	if t.batchIO {
		if err := osthread.BatchProcess(); err != nil {
			slog.Warn("SCHED_BATCH refused; threads keep their policy", "err", err)
			t.batchIO = false
		}
	}
	if os.Getenv("GOMAXPROCS") == "" {
		if want := blocking + 1; runtime.GOMAXPROCS(0) < want {
			runtime.GOMAXPROCS(want)
		}
	}
}
