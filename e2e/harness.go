// Package e2e owns govm's end-to-end harness: it boots real Linux guests
// with the real govm binary and reports what the guest printed and how govm
// exited. On a host with VT-x/AMD-V it runs govm directly; on a host whose
// /dev/kvm cannot run guest kernels (kvm_pvm), it runs govm inside a nested
// L1 guest under QEMU TCG with emulated AMD SVM (scripts/l1-init). The
// assets it boots are built by scripts/assets.sh into build/.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/govm/govm/hostinfo"
)

// Mode is how guests are run.
type Mode int

const (
	// Direct runs build/govm on this host.
	Direct Mode = iota
	// Nested runs build/govm inside a QEMU TCG L1 guest with kvm-amd.
	Nested
)

func (m Mode) String() string {
	if m == Direct {
		return "direct"
	}
	return "nested"
}

// Assets are the files scripts/assets.sh builds.
type Assets struct {
	Dir      string
	BzImage  string
	VMLinux  string
	Initrd   string
	Govm     string
	L1Base   string
	L1Kernel string
}

// ErrNoAssets means scripts/assets.sh has not been run.
var ErrNoAssets = errors.New("e2e assets missing (run 'make assets')")

// FindAssets locates build/ from $GOVM_BUILD or by walking up from the
// working directory to the module root.
func FindAssets() (*Assets, error) {
	dir := os.Getenv("GOVM_BUILD")
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, ErrNoAssets
		}
		dir = filepath.Join(root, "build")
	}
	a := &Assets{
		Dir:      dir,
		BzImage:  filepath.Join(dir, "kernel/bzImage"),
		VMLinux:  filepath.Join(dir, "kernel/vmlinux"),
		Initrd:   filepath.Join(dir, "uroot.cpio"),
		Govm:     filepath.Join(dir, "govm"),
		L1Base:   filepath.Join(dir, "l1-base.cpio"),
		L1Kernel: filepath.Join(dir, "kernel/bzImage"),
	}
	for _, f := range []string{a.BzImage, a.VMLinux, a.Initrd, a.Govm, a.L1Base} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNoAssets, f)
		}
	}
	return a, nil
}

// moduleRoot is the root of this module: the first directory above the
// working directory (go test runs in the package's) with a go.mod.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// ChooseMode picks Direct on hosts whose KVM runs Linux natively, Nested
// where QEMU is installed, and says why neither works otherwise.
func ChooseMode() (Mode, error) {
	if os.Getenv("GOVM_E2E_MODE") == "nested" {
		return Nested, nil
	}
	f := hostinfo.Probe(hostinfo.DefaultPaths)
	if f.CanBootLinux() {
		if _, err := os.Stat("/dev/kvm"); err == nil {
			return Direct, nil
		}
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return 0, fmt.Errorf("this host cannot boot Linux under its own KVM (hardware virt %v, kvm_pvm %v) and qemu-system-x86_64 is not installed for the nested path", f.HardwareVirt(), f.PVM)
	}
	return Nested, nil
}

// Guest paths of the assets, in direct mode the host's and in nested mode
// where scripts/assets.sh put them inside L1.
const (
	l1BzImage = "/l2/bzImage"
	l1Initrd  = "/l2/initramfs.cpio"
	l1VMLinux = "/l2/vmlinux"
)

// Case is one govm invocation. Args may use the placeholders {bzImage},
// {vmlinux} and {initrd}.
type Case struct {
	// Command is the govm subcommand; default "run".
	Command string
	// Program, if set, is run with Args in govm's place (Command is then
	// not used): a command on PATH (L1's in nested mode) or a path, where
	// {dir} names the scratch directory.
	Program string
	Args    []string
	Timeout time.Duration // for one attempt of the whole run; default 3 minutes
	// NeedVMLinux carries the ELF vmlinux into L1 (it is large, so only
	// when asked).
	NeedVMLinux bool
	// NeedPeers carries QEMU and gokvm into L1 (build/l1-peers.cpio), for the
	// benchmarks that run it next to govm as the peer.
	NeedPeers bool
	// Files are created in a scratch directory before govm starts (inside
	// L1 in nested mode); {dir} in Args and After names it.
	Files map[string][]byte
	// Before is a shell snippet run before govm starts, in the same place
	// as After (to make large disk images where they are used).
	Before string
	// Input is typed on govm's standard input once the console shows
	// InputAfter (a fixed string); without Input, stdin is /dev/null.
	Input      string
	InputAfter string
	// KillAfter, if set, kills govm with SIGKILL once the console shows
	// it (a fixed string); its exit code is then 137, as a shell reports.
	KillAfter string
	// GoPackages, if set, runs govm in this module's root with a go
	// command that can resolve these packages (go env, go list) on PATH:
	// the host's in direct mode; in nested mode a goTree carried into L1,
	// which resolves but cannot compile (for govm run --uroot).
	GoPackages []string
	// Env is added to govm's environment; {dir} names the scratch
	// directory.
	Env []string
	// After is a shell snippet run once govm has exited; its output is
	// part of Result.Output (in nested mode it runs inside L1, where the
	// files are).
	After string
}

// isGovmRun reports whether the case runs `govm run` (Command's default),
// which the harness gives --metrics and runCase a --timeout.
func (c Case) isGovmRun() bool {
	return c.Program == "" && (c.Command == "" || c.Command == "run")
}

// Result is what a case produced.
type Result struct {
	Output   string        // console: govm's and the guest's output
	GovmExit int           // govm's exit code
	BootTime time.Duration // govm's start to the guest agent's boot-timer write (--metrics), 0 if none
	Retries  int           // L1 crashes retried
	// NICs are govm's per-NIC counters (--metrics "nics"), raw JSON.
	NICs json.RawMessage
}

// metricsJSON is the part of govm's --metrics file the harness reads.
type metricsJSON struct {
	BootTimeMS float64         `json:"boot_time_ms"`
	NICs       json.RawMessage `json:"nics"`
}

func (r *Result) setMetrics(b []byte) {
	var m metricsJSON
	if json.Unmarshal(b, &m) != nil {
		return
	}
	r.NICs = m.NICs
	if m.BootTimeMS > 0 {
		r.BootTime = time.Duration(m.BootTimeMS * float64(time.Millisecond))
	}
}

// Marker reports the value of a GOVM-NAME=value line.
func (r *Result) Marker(name string) (string, bool) {
	// Kernel messages can interleave with the guest agent's lines, so the
	// value ends at the first character that cannot belong to it.
	re := regexp.MustCompile(`(?:^|[^A-Z-])` + regexp.QuoteMeta(name) + `=([A-Za-z0-9._-]+)`)
	m := re.FindStringSubmatch(r.Output)
	if m == nil {
		return "", false
	}
	return m[1], true
}

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

// errEmulatorFault marks a nested run spoiled by the emulated L1 rather
// than by govm: see emulatorFault.
var errEmulatorFault = errors.New("nested emulator fault")

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
			if why := emulatorFault(c, res); why != "" {
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

func (r *Runner) runDirect(ctx context.Context, c Case) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "govm-case-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for name, data := range c.Files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	if c.Before != "" {
		before := exec.Command("sh", "-c", r.expand1(strings.ReplaceAll(c.Before, "{dir}", dir), r.Assets.BzImage, r.Assets.VMLinux, r.Assets.Initrd))
		before.Env = r.toolEnv()
		if out, err := before.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("before: %v: %s", err, out)
		}
	}
	prog, args := strings.ReplaceAll(c.Program, "{dir}", dir), r.expand(c.Args, r.Assets.BzImage, r.Assets.VMLinux, r.Assets.Initrd)
	if c.Program == "" {
		prog, args = r.Assets.Govm, append([]string{c.Command}, args...)
	}
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "{dir}", dir)
	}
	metrics := ""
	if c.isGovmRun() {
		f, err := os.CreateTemp("", "govm-metrics-*.json")
		if err != nil {
			return nil, err
		}
		f.Close()
		defer os.Remove(f.Name())
		metrics = f.Name()
		args = append(args, "--metrics", metrics)
	}
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Env = os.Environ()
	for _, e := range c.Env {
		cmd.Env = append(cmd.Env, strings.ReplaceAll(e, "{dir}", dir))
	}
	if len(c.GoPackages) > 0 {
		if cmd.Dir, err = moduleRoot(); err != nil {
			return nil, err
		}
	}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var stdin io.WriteCloser
	if c.Input != "" {
		if stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err = cmd.Start(); err != nil {
		return nil, err
	}
	if stdin != nil {
		go typeInput(ctx, stdin, &out, c.InputAfter, c.Input)
	}
	if c.KillAfter != "" {
		go killAfter(ctx, cmd.Process, &out, c.KillAfter)
	}
	err = cmd.Wait()
	if c.After != "" {
		after := exec.Command("sh", "-c", r.expand1(strings.ReplaceAll(c.After, "{dir}", dir), r.Assets.BzImage, r.Assets.VMLinux, r.Assets.Initrd))
		after.Env = r.toolEnv()
		after.Stdout, after.Stderr = &out, &out
		_ = after.Run()
	}
	res := &Result{Output: out.String(), GovmExit: -1}
	if metrics != "" {
		if b, err := os.ReadFile(metrics); err == nil {
			res.setMetrics(b)
		}
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.GovmExit = 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		res.GovmExit = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.GovmExit = 128 + int(ws.Signal()) // as a shell reports it
		}
	case ctx.Err() != nil:
		return res, fmt.Errorf("govm did not finish within %v", c.Timeout)
	default:
		return res, err
	}
	return res, nil
}

// toolEnv is the environment of a direct run's Before and After: the
// build directory first on PATH, so they find govm-agent as L1's do.
func (r *Runner) toolEnv() []string {
	return append(os.Environ(), "PATH="+filepath.Dir(r.Assets.Govm)+":"+os.Getenv("PATH"))
}

// l1Append is L1's kernel command line.
const l1Append = "console=ttyS0 quiet panic=-1"

// l1Pin, on L1's command line, runs the case (govm, its guest, the
// host-side servers, the peers) on L1's CPU 0 only (scripts/l1-init) and
// keeps L1's other CPU idle. It is the workaround for a fault in QEMU's
// TCG emulation of SVM (README, "The nested emulator's fault"): when
// VMRUN injects an interrupt, TCG delivers it at once but leaves the
// vector as the CPU's pending exception, and if the emulator is asked to
// leave its execution loop before the next exception, #VMEXIT or
// interrupt clears that, it delivers the vector a second time, at the
// first instruction of the handler, with interrupts off. The requests to
// leave that come with no interrupt for the running CPU are mostly kicks
// for the other CPU: its timer and its interrupts, rare with that CPU idle
// (docs/nested-tcg-fault.md). Every case runs so, unless
// $GOVM_E2E_L1_PIN is 0.
const l1Pin = "govm.cpus=0"

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// l1QEMUArgs is how the harness starts L1. For experiments,
// $GOVM_E2E_L1_CPU replaces the CPU model ("max": every feature TCG
// emulates, SVM included), $GOVM_E2E_L1_SMP the CPU count and
// $GOVM_E2E_L1_APPEND adds to its command line (e.g.
// govm.kvm_amd.PARAM=VALUE for kvm-amd). By default: two emulated CPUs
// with AMD SVM on single-threaded TCG, which ran L2 guests faster and
// more reliably than thread=multi (docs/nested-tcg-fault.md).
func l1QEMUArgs(kernel, initrd string) []string {
	app := l1Append
	if os.Getenv("GOVM_E2E_L1_PIN") != "0" {
		app += " " + l1Pin
	}
	return []string{
		"-accel", "tcg,thread=single", "-cpu", envOr("GOVM_E2E_L1_CPU", "max"), "-smp", envOr("GOVM_E2E_L1_SMP", "2"), "-m", "6G",
		"-kernel", kernel, "-initrd", initrd, "-append", strings.TrimSpace(app + " " + os.Getenv("GOVM_E2E_L1_APPEND")),
		"-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
	}
}

// l1Panic matches an L1 kernel crash on its console.
var l1Panic = regexp.MustCompile(`Kernel panic - not syncing|BUG: |general protection fault|stack guard page`)

func (r *Runner) runNested(ctx context.Context, c Case) (*Result, error) {
	if r.Slots != nil {
		select {
		case r.Slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		defer func() { <-r.Slots }()
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	args := r.expand(c.Args, l1BzImage, l1VMLinux, l1Initrd)
	const l1Dir = "/case"
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "{dir}", l1Dir)
	}
	if c.isGovmRun() {
		args = append(args, "--metrics", "/tmp/metrics.json")
		// $GOVM_E2E_L2_APPEND adds to the L2 guest's command line, for
		// experiments with the nested emulator's faults.
		if v := os.Getenv("GOVM_E2E_L2_APPEND"); v != "" {
			args = append(args, "--append", v)
		}
	}
	// govm's output goes to a file in L1 and is printed after it exits:
	// heavy traffic on L1's own emulated console while an L2 guest runs
	// makes the TCG-emulated L1 unstable (docs/testing.md).
	var script strings.Builder
	script.WriteString("mkdir -p " + l1Dir + "\ncd /tmp\n")
	if c.Before != "" {
		script.WriteString(r.expand1(strings.ReplaceAll(c.Before, "{dir}", l1Dir), l1BzImage, l1VMLinux, l1Initrd) + "\n")
	}
	govm := "govm " + c.Command
	if c.Program != "" {
		govm = shellQuote(strings.ReplaceAll(c.Program, "{dir}", l1Dir))
	}
	for _, a := range args {
		govm += " " + shellQuote(a)
	}
	var tree *goTree
	var env []string
	cd := ""
	if len(c.GoPackages) > 0 {
		root, err := moduleRoot()
		if err != nil {
			return nil, err
		}
		if tree, err = buildGoTree(root, c.GoPackages...); err != nil {
			return nil, err
		}
		cd = "cd " + shellQuote(tree.ModRoot) + " && "
		env = append(env, "PATH="+tree.GoBinDir+":/bin:/sbin")
		env = append(env, tree.Env...)
	}
	for _, e := range c.Env {
		env = append(env, strings.ReplaceAll(e, "{dir}", l1Dir))
	}
	if len(env) > 0 || cd != "" {
		// In a subshell, so After runs in L1's own environment; exec, so
		// the subshell's PID is govm's (KillAfter kills it).
		sub := "("
		for _, e := range env {
			sub += "export " + shellQuote(e) + "\n"
		}
		govm = sub + cd + "exec " + govm + ")"
	}
	switch {
	case c.KillAfter != "":
		script.WriteString(": >/tmp/console.txt\n")
		script.WriteString(govm + " </dev/null >/tmp/console.txt 2>&1 &\npid=$!\n")
		script.WriteString("while kill -0 $pid 2>/dev/null && ! grep -qF " + shellQuote(c.KillAfter) + " /tmp/console.txt; do sleep 1; done\n")
		script.WriteString("kill -KILL $pid 2>/dev/null\nwait $pid\necho " + markerRC + "=$?\n")
	case c.Input == "":
		script.WriteString(govm + " </dev/null >/tmp/console.txt 2>&1\necho " + markerRC + "=$?\n")
	default:
		// govm reads a FIFO that stays open (no EOF) until the input has
		// been typed after the console showed InputAfter.
		// SIGPIPE ignored: if govm has already exited, typing fails
		// quietly and its exit code is still reported.
		script.WriteString("trap '' PIPE\nmkfifo /tmp/stdin\n: >/tmp/console.txt\n")
		script.WriteString(govm + " </tmp/stdin >/tmp/console.txt 2>&1 &\npid=$!\nexec 3>/tmp/stdin\n")
		script.WriteString("while kill -0 $pid 2>/dev/null && ! grep -qF " + shellQuote(c.InputAfter) + " /tmp/console.txt; do sleep 1; done\n")
		script.WriteString("printf '%s\\n' " + shellQuote(c.Input) + " >&3\n")
		script.WriteString("wait $pid\necho " + markerRC + "=$?\nexec 3>&-\n")
	}
	script.WriteString("sync\n")
	script.WriteString("cat /tmp/console.txt\n")
	script.WriteString("echo " + markerMetrics + "-BEGIN; cat /tmp/metrics.json 2>/dev/null; echo; echo " + markerMetrics + "-END\n")
	if c.After != "" {
		script.WriteString(r.expand1(strings.ReplaceAll(c.After, "{dir}", l1Dir), l1BzImage, l1VMLinux, l1Initrd) + "\n")
	}
	files := []cpioFile{{Name: "case.sh", Mode: 0o755, Data: []byte(script.String())}}
	for name, data := range c.Files {
		files = append(files, cpioFile{Name: "case/" + name, Mode: 0o644, Data: data})
	}
	if tree != nil {
		files = append(files, tree.Files...)
	}
	if c.NeedVMLinux {
		data, err := os.ReadFile(r.Assets.VMLinux)
		if err != nil {
			return nil, err
		}
		files = append(files, cpioFile{Name: "l2/vmlinux", Mode: 0o644, Data: data})
	}
	initrd, err := os.CreateTemp("", "govm-l1-*.cpio")
	if err != nil {
		return nil, err
	}
	defer os.Remove(initrd.Name())
	base, err := os.Open(r.Assets.L1Base)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(initrd, base)
	base.Close()
	if err == nil && c.NeedPeers {
		// Concatenated newc archives make one initramfs.
		var q *os.File
		if q, err = os.Open(filepath.Join(r.Assets.Dir, "l1-peers.cpio")); err == nil {
			_, err = io.Copy(initrd, q)
			q.Close()
		}
	}
	if err == nil {
		err = writeCpio(initrd, files)
	}
	if cerr := initrd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("building the L1 initramfs: %w", err)
	}

	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", l1QEMUArgs(r.Assets.L1Kernel, initrd.Name())...)
	cmd.WaitDelay = 5 * time.Second
	// L1 dies with the test process, also when go test's own timeout
	// ends it without cancelling anything.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var out bytes.Buffer
	done := make(chan struct{})
	go collect(pr, &out, done)
	runErr := cmd.Run()
	pw.Close()
	<-done
	res := &Result{Output: out.String(), GovmExit: -1}
	if v, ok := res.Marker(markerRC); ok {
		res.GovmExit, _ = strconv.Atoi(v)
	}
	if _, after, ok := strings.Cut(res.Output, markerMetrics+"-BEGIN\n"); ok {
		if m, _, ok := strings.Cut(after, markerMetrics+"-END"); ok {
			res.setMetrics([]byte(m))
		}
	}
	if _, ok := res.Marker(markerL1End); !ok {
		if !strings.Contains(res.Output, markerRC) && (l1Panic.MatchString(res.Output) || (runErr == nil && ctx.Err() == nil)) {
			// L1's kernel panicked, or L1 reset (QEMU, run with
			// -no-reboot, exited cleanly) before govm returned: a fault
			// of the emulated L1, not of govm or the L2 guest.
			return res, fmt.Errorf("%w: L1 crashed or reset before govm returned", errEmulatorFault)
		}
		if ctx.Err() != nil && !strings.Contains(res.Output, markerRC) {
			// govm bounds every guest with --timeout; an L1 that has not
			// reported by the case's bound has itself stopped.
			return res, fmt.Errorf("%w: L1 stopped responding (no report within %v)", errEmulatorFault, c.Timeout)
		}
		if ctx.Err() != nil {
			return res, fmt.Errorf("nested run did not finish within %v", c.Timeout)
		}
		return res, fmt.Errorf("L1 ended without reporting (qemu: %v)", runErr)
	}
	return res, nil
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
