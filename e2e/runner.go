package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Runner runs cases.
type Runner struct {
	Mode   Mode
	Assets *Assets
	Log    func(format string, args ...any)
	// Budget, shared by copies of a Runner, bounds the time all cases
	// together may spend on spoiled nested attempts, so a bad streak of
	// the emulator cannot push the suite past its timeout.
	Budget *RetryBudget
	// Slots, shared by copies of a Runner, bounds how many L1 guests run
	// at once (nil: no bound). Each is a single-threaded emulator, so the
	// tests run side by side up to one L1 per host CPU.
	Slots chan struct{}
}

// RetryBudget is time available for retrying spoiled nested attempts.
type RetryBudget struct {
	mu   sync.Mutex
	left time.Duration
}

// NewRetryBudget allows d of retries in all.
func NewRetryBudget(d time.Duration) *RetryBudget { return &RetryBudget{left: d} }

// spend takes d from the budget and reports whether any is left.
func (b *RetryBudget) spend(d time.Duration) bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left -= d
	return b.left > 0
}

// nestedAttempts bounds how often a nested run spoiled by an emulator
// fault is tried in all (docs/nested-tcg-fault.md).
const nestedAttempts = 4

// Run runs one case. In nested mode a run spoiled by a fault of QEMU's
// TCG emulation (emulatorFault) is retried, up to nestedAttempts in all;
// every retry is logged with the console tail and counted in
// Result.Retries. Direct runs are never retried.
func (r *Runner) Run(ctx context.Context, c Case) (*Result, error) {
	if c.Timeout == 0 {
		c.Timeout = 3 * time.Minute
	}
	if c.Command == "" {
		c.Command = "run"
	}
	if r.Mode == Direct {
		return r.runDirect(ctx, c)
	}
	var res *Result
	var err error
	retries := 0
	for attempt := 1; attempt <= nestedAttempts; attempt++ {
		start := time.Now()
		res, err = r.runNested(ctx, c)
		if err == nil {
			if why := emulatorFault(res); why != "" {
				err = fmt.Errorf("%w: %s", errEmulatorFault, why)
			}
		}
		if !errors.Is(err, errEmulatorFault) || attempt == nestedAttempts {
			break
		}
		if !r.Budget.spend(time.Since(start)) {
			if r.Log != nil {
				r.Log("nested attempt %d spoiled (%v); the suite's retry budget is spent. %s", attempt, err, keepConsole(res))
			}
			break
		}
		retries++
		if r.Log != nil {
			r.Log("nested attempt %d spoiled (%v); retrying. %s", attempt, err, keepConsole(res))
		}
	}
	if res != nil {
		res.Retries = retries
	}
	return res, err
}

// keepConsole saves a spoiled attempt's whole console to a file for
// diagnosis and says where, with the lines around the fault.
func keepConsole(res *Result) string {
	if res == nil {
		return "(no output)"
	}
	around := tail(res.Output, 8)
	if loc := tcgFault.FindStringIndex(res.Output); loc != nil {
		around = tail(res.Output[:loc[1]], 8)
	}
	f, err := os.CreateTemp("", "govm-e2e-spoiled-*.log")
	if err != nil {
		return "console:\n" + around
	}
	defer f.Close()
	_, _ = f.WriteString(res.Output)
	return "whole console in " + f.Name() + "; near the end:\n" + around
}

func (r *Runner) expand(args []string, bz, vm, initrd string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = r.expand1(a, bz, vm, initrd)
	}
	return out
}

// expand1 replaces {bzImage}, {vmlinux} and {initrd} in s.
func (r *Runner) expand1(s, bz, vm, initrd string) string {
	s = strings.ReplaceAll(s, "{bzImage}", bz)
	s = strings.ReplaceAll(s, "{vmlinux}", vm)
	return strings.ReplaceAll(s, "{initrd}", initrd)
}

const (
	markerRC      = "GOVM-RC"
	markerL1End   = "GOVM-L1-EXIT"
	markerMetrics = "GOVM-METRICS"
)

// collect reads console output into a buffer.
func collect(rd io.Reader, buf *bytes.Buffer, done chan<- struct{}) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		buf.WriteString(strings.TrimRight(sc.Text(), "\r"))
		buf.WriteByte('\n')
	}
	close(done)
}

// lockedBuffer collects a command's output while the harness watches it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls out until it shows marker (true) or ctx ends (false).
func waitFor(ctx context.Context, out *lockedBuffer, marker string) bool {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(out.String(), marker) {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// typeInput writes input and a newline to w once out shows after, and
// keeps w open (no EOF) until the case ends.
func typeInput(ctx context.Context, w io.WriteCloser, out *lockedBuffer, after, input string) {
	defer w.Close()
	if !waitFor(ctx, out, after) {
		return
	}
	_, _ = io.WriteString(w, input+"\n")
	<-ctx.Done()
}

// killAfter kills p with SIGKILL once out shows marker.
func killAfter(ctx context.Context, p *os.Process, out *lockedBuffer, marker string) {
	if waitFor(ctx, out, marker) {
		_ = p.Kill()
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
