package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/govm/govm/boot"
	"github.com/govm/govm/kvm"
	"github.com/govm/govm/machine"
	"github.com/govm/govm/virtio"
)

// DefaultCmdline comes before --append: the console on COM1, a panic
// reboots at once (govm sees the panic line and exits with ExitPanic), and
// a reboot goes through the i8042 reset line, which govm serves.
const DefaultCmdline = "console=ttyS0 panic=-1 reboot=k"

type runOptions struct {
	kernel  string
	initrd  string
	uroot   []string
	appends []string
	mem     string
	cpus    int
	kvmPath string

	timeout     time.Duration
	consoleLog  string
	expect      string
	failOn      string
	metrics     string
	disks       []string
	nets        []string
	shares      []string
	cpuAffinity string
	noRNG       bool
	seccomp     seccompFlag
}

func newRunCmd(stdin *os.File, stdout, stderr io.Writer, code *int) *cobra.Command {
	o := runOptions{}
	c := &cobra.Command{
		Use:   "run --kernel BZIMAGE [--initrd CPIO] [flags]",
		Short: "Boot a Linux kernel in a new VM",
		Long: `Boot a Linux kernel (bzImage or ELF vmlinux) in a new VM with the given
memory and vCPUs. The guest's serial console (COM1) is govm's stdin and stdout.
On a terminal, stdin is put in raw mode; type Ctrl-A x to quit, Ctrl-A Ctrl-A to
send a Ctrl-A. Without a terminal (CI), end of input does not stop the guest.

The kernel command line is "` + DefaultCmdline + `" followed by --append.

` + exitCodeTable,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := o.run(stdin, stdout, stderr)
			*code = n
			return err
		},
	}
	o.addVMFlags(c)
	f := c.Flags()
	f.StringVarP(&o.initrd, "initrd", "i", "", "initial ramdisk (cpio archive, optionally compressed)")
	f.StringSliceVar(&o.uroot, "uroot", nil, "build a u-root initramfs with these Go main packages (the first is uinit) and boot it;\n"+
		"needs a Go toolchain; cached by content (see govm initramfs)")
	f.StringVar(&o.expect, "expect", "", "exit 0 as soon as a console line matches this regular expression")
	f.StringVar(&o.failOn, "fail-on", "", "exit 36 as soon as a console line matches this regular expression")
	f.StringVar(&o.metrics, "metrics", "", "write boot time, exits by kind and console bytes as JSON to this file")
	c.MarkFlagsMutuallyExclusive("initrd", "uroot")
	return c
}

// addVMFlags adds the flags that describe the VM, which govm run and
// govm exec share, to c; kernel is required.
func (o *runOptions) addVMFlags(c *cobra.Command) {
	f := c.Flags()
	f.StringVarP(&o.kernel, "kernel", "k", "", "kernel image: a bzImage or an uncompressed ELF vmlinux (required)")
	f.StringArrayVar(&o.appends, "append", nil, "extra kernel command line, added after govm's default (repeatable)")
	f.StringVarP(&o.mem, "mem", "m", "512M", "guest RAM, e.g. 512M or 2G (a plain number is MiB)")
	f.IntVarP(&o.cpus, "cpus", "c", 1, "number of vCPUs")
	f.StringVar(&o.kvmPath, "kvm", kvm.DevicePath, "KVM device")
	f.DurationVar(&o.timeout, "timeout", 0, "stop the VM after this long (e.g. 2m) and exit 35")
	f.StringVar(&o.consoleLog, "console-log", "", "also write everything the guest prints to this file")
	f.StringArrayVar(&o.disks, "disk", nil, "attach a disk image as virtio-blk: PATH[,ro][,serial=ID][,queues=N] (N request queues; default one per vCPU, up to 16) (repeatable)")
	f.StringArrayVar(&o.nets, "net", nil, "add a virtio-net NIC (repeatable):\n"+
		"user[,net=CIDR][,dns=ADDR][,mtu=N][,hostfwd=tcp|udp:[HOSTADDR]:PORT-[GUESTADDR]:PORT]...[,switch=PATH]\n"+
		"    a user-mode network needing no privilege: DHCP, DNS, NAT to the host's network; the host is the gateway\n"+
		"    (10.0.2.2; guest 10.0.2.15, DNS 10.0.2.3); switch=PATH puts every VM naming PATH on one LAN;\n"+
		"tap=NAME (attach, or create if missing) or tap (create), with ,host-ip=ADDR/LEN (set on the host side);\n"+
		"socket=PATH[,mtu=N]: a switch speaking QEMU's stream protocol (passt, gvproxy); every kind takes ,mac=MAC")
	f.StringVar(&o.cpuAffinity, "cpu-affinity", "", "pin vCPU i to the i-th host CPU of this list, one per vCPU (e.g. 2,3 or 4-7)")
	f.StringArrayVar(&o.shares, "share", nil, "share a host directory over virtio-fs: HOSTDIR[:TAG][,ro] (TAG default share0, share1, ...;\n"+
		"the guest mounts it with mount -t virtiofs TAG DIR; ro refuses every write on the host side) (repeatable)")
	f.BoolVar(&o.noRNG, "no-rng", false, "leave out the virtio-rng device (the guest's entropy from the host's getrandom)")
	f.Var(&o.seccomp, "seccomp", "once the VM is built, confine govm to the system calls running it needs (on; a forbidden\n"+
		"call kills govm with exit 2 and its stack); log: allow them but have the kernel log them; off: no filter")
	_ = c.MarkFlagRequired("kernel")
}

// openImage opens a file the VM needs and checks it is a readable regular
// file, naming the flag in the error.
func openImage(flag, path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, 0, fmt.Errorf("--%s %s: %w", flag, path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("--%s %s: %w", flag, path, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("--%s %s: not a regular file", flag, path)
	}
	if st.Size() == 0 {
		f.Close()
		return nil, 0, fmt.Errorf("--%s %s: file is empty", flag, path)
	}
	return f, st.Size(), nil
}

func (o *runOptions) run(stdin *os.File, stdout, stderr io.Writer) (int, error) {
	started := time.Now()
	var open []io.Closer // the files the VM reads and writes while it runs
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	sink := &consoleSink{outs: []io.Writer{stdout}}
	cfg, err := o.config(started, sink, stderr, &open)
	if err != nil {
		return ExitError, err
	}
	metricsOut, err := o.outputs(sink, &open)
	if err != nil {
		return ExitError, err
	}
	m, err := machine.New(cfg)
	if err != nil {
		return ExitError, explain(err, o.kvmPath)
	}
	defer m.Close()
	// Said up front, before the guest starts, so nobody stares at a
	// silent console.
	if !m.Host().CanBootLinux() {
		fmt.Fprintln(stderr, "govm: warning: this host's /dev/kvm is served by kvm_pvm without VT-x/AMD-V: "+
			"guest kernel code is emulated instruction by instruction and Linux will not boot here; "+
			"use a host with hardware virtualization, or the nested path (make run)")
	}
	return o.runVM(m, sink, metricsOut, stdin, stderr)
}

// config checks the flags that describe the VM and opens its kernel and
// initrd (added to open), in the order a user's mistakes are reported.
func (o *runOptions) config(started time.Time, sink *consoleSink, stderr io.Writer, open *[]io.Closer) (machine.Config, error) {
	memSize, err := ParseSize(o.mem)
	if err != nil {
		return machine.Config{}, usageError{fmt.Errorf("--mem: %w", err)}
	}
	if o.cpus < 1 {
		return machine.Config{}, usageError{fmt.Errorf("--cpus %d: need at least 1", o.cpus)}
	}
	if o.timeout < 0 {
		return machine.Config{}, usageError{fmt.Errorf("--timeout %v: must be positive", o.timeout)}
	}
	var affinity []int
	if o.cpuAffinity != "" {
		if affinity, err = machine.ParseCPUList(o.cpuAffinity); err != nil {
			return machine.Config{}, usageError{fmt.Errorf("--cpu-affinity: %w", err)}
		}
		if len(affinity) != o.cpus {
			return machine.Config{}, usageError{fmt.Errorf("--cpu-affinity %s: %d CPUs for %d vCPUs (one per vCPU)", o.cpuAffinity, len(affinity), o.cpus)}
		}
	}
	netSpecs, err := parseNets(o.nets)
	if err != nil {
		return machine.Config{}, err
	}
	disks, err := parseDisks(o.disks)
	if err != nil {
		return machine.Config{}, err
	}
	shares, err := parseShares(o.shares)
	if err != nil {
		return machine.Config{}, err
	}
	if sink.expect, err = compileFlag("expect", o.expect); err != nil {
		return machine.Config{}, err
	}
	if sink.failOn, err = compileFlag("fail-on", o.failOn); err != nil {
		return machine.Config{}, err
	}
	kf, ksize, err := openImage("kernel", o.kernel)
	if err != nil {
		return machine.Config{}, err
	}
	*open = append(*open, kf)
	bc := boot.Config{Kernel: kf, KernelSize: ksize, Cmdline: DefaultCmdline}
	for _, a := range o.appends {
		if a = strings.TrimSpace(a); a != "" {
			bc.Cmdline += " " + a
		}
	}
	if len(o.uroot) > 0 {
		res, err := buildUroot(o.uroot, stderr)
		if err != nil {
			return machine.Config{}, err
		}
		o.initrd = res.Path
	}
	if o.initrd != "" {
		f, size, err := openImage("initrd", o.initrd)
		if err != nil {
			return machine.Config{}, err
		}
		*open = append(*open, f)
		bc.Initrd, bc.InitrdSize = f, size
	}
	var seeds *virtio.SeedRecorder
	if dir := os.Getenv(envSeeds); dir != "" {
		if seeds, err = virtio.NewSeedRecorder(dir); err != nil {
			return machine.Config{}, fmt.Errorf("%s: %w", envSeeds, err)
		}
	}
	nics, err := attachNets(netSpecs, open)
	if err != nil {
		return machine.Config{}, err
	}
	return machine.Config{
		KVMPath: o.kvmPath, MemSize: memSize, CPUs: o.cpus, Boot: bc, Console: sink, Started: started,
		Disks: disks, NICs: nics, CPUAffinity: affinity, Shares: shares, NoRNG: o.noRNG, Seeds: seeds,
	}, nil
}

// envSeeds names a directory where govm records the guest drivers'
// requests as fuzz seeds (virtio.SeedRecorder; development only).
const envSeeds = "GOVM_DEBUG_SEEDS"

// outputs opens --console-log and --metrics (added to open) before the
// guest starts, so a bad path fails at once rather than after the run.
func (o *runOptions) outputs(sink *consoleSink, open *[]io.Closer) (*outFile, error) {
	if o.consoleLog != "" {
		f, err := createOut(o.consoleLog)
		if err != nil {
			return nil, fmt.Errorf("--console-log: %w", err)
		}
		*open = append(*open, f)
		sink.outs = append(sink.outs, f)
	}
	if o.metrics == "" {
		return nil, nil
	}
	f, err := createOut(o.metrics)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	*open = append(*open, f)
	return f, nil
}

// runVM runs the VM until the guest, the timeout, a console match, a
// signal or the user ends it, and reports the verdict.
func (o *runOptions) runVM(m *machine.Machine, sink *consoleSink, metricsOut *outFile, stdin *os.File, stderr io.Writer) (int, error) {
	ctx, cancel, stop := vmContext(o.timeout)
	defer stop()
	sink.onMatch = func(k matchKind, line string) {
		switch k {
		case matchExpect:
			cancel(errExpected)
		case matchFailOn:
			cancel(&failOnError{line})
		case matchPanic:
			cancel(errPanicLine)
		}
	}
	quit := make(chan struct{})
	if term.IsTerminal(int(stdin.Fd())) {
		old, err := term.MakeRaw(int(stdin.Fd()))
		if err != nil {
			return ExitError, fmt.Errorf("terminal raw mode: %w", err)
		}
		defer term.Restore(int(stdin.Fd()), old)
		go feedConsole(stdin, m.Serial, true, quit)
	} else {
		go feedConsole(stdin, m.Serial, false, quit)
	}
	go func() {
		<-quit
		cancel(errUserQuit)
	}()

	if err := confineVM(o.seccomp.mode, len(o.shares), stderr); err != nil {
		return ExitError, err
	}
	res := m.Run(ctx)
	sink.Flush() // the guest's last words before govm's own
	v := decide(res, context.Cause(ctx))
	if metricsOut != nil {
		if err := writeMetrics(metricsOut, m.Stats(), v); err != nil {
			fmt.Fprintf(stderr, "govm: --metrics: %v\n", err)
		}
	}
	switch v.kind {
	case "timeout":
		fmt.Fprintf(stderr, "govm: timeout after %v (exit %d); the guest when stopped:\n", o.timeout, ExitTimeout)
		for _, l := range res.State {
			fmt.Fprintf(stderr, "  %s\n", l)
		}
		fmt.Fprintf(stderr, "last console lines:\n%s\n", sink.Tail())
	case "error":
		return ExitError, fmt.Errorf("vCPU %d: %w", res.VCPU, res.Err)
	}
	if v.message != "" {
		fmt.Fprintf(stderr, "govm: %s\n", v.message)
	}
	return v.code, nil
}

// vmContext is the context a VM runs under: canceled with errTimeout
// after timeout (if positive), or by SIGINT or SIGTERM. stop releases
// the timer and the signal handler.
func vmContext(timeout time.Duration) (ctx context.Context, cancel context.CancelCauseFunc, stop func()) {
	ctx, cancel = context.WithCancelCause(context.Background())
	var t *time.Timer
	if timeout > 0 {
		t = time.AfterFunc(timeout, func() { cancel(errTimeout) })
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		if s, ok := <-sigs; ok {
			cancel(fmt.Errorf("govm received %v", s))
		}
	}()
	return ctx, cancel, func() {
		signal.Stop(sigs)
		close(sigs)
		if t != nil {
			t.Stop()
		}
		cancel(nil)
	}
}

// verdict is how a run ended: govm's exit code, a word for --metrics and
// the line for stderr ("" for none).
type verdict struct {
	code    int
	kind    string
	message string
}

// decide turns the machine's stop and the cause of a cancellation into
// govm's verdict. It is a pure function, tested with made-up results.
func decide(res machine.Result, cause error) verdict {
	// A console match is something the guest already said: it decides the
	// run even when the guest went on to stop by itself before the vCPUs saw
	// the cancellation (a panicking kernel resets at once with panic=-1).
	// govm's own failure still comes first.
	var foe *failOnError
	if res.Reason != machine.StopError {
		switch {
		case errors.Is(cause, errExpected):
			return verdict{ExitOK, "expect", ""}
		case errors.As(cause, &foe):
			return verdict{ExitFailOn, "fail-on", fmt.Sprintf("console matched --fail-on: %q (exit %d)", foe.line, ExitFailOn)}
		case errors.Is(cause, errPanicLine):
			return verdict{ExitPanic, "panic", fmt.Sprintf("guest kernel panic (exit %d)", ExitPanic)}
		}
	}
	// A timeout or the user's quit only names the stop it caused.
	if res.Reason == machine.StopCanceled {
		switch {
		case errors.Is(cause, errUserQuit):
			return verdict{ExitOK, "quit", ""}
		case errors.Is(cause, errTimeout):
			return verdict{ExitTimeout, "timeout", ""} // the caller prints the console tail
		}
	}
	code := exitCode(res)
	switch res.Reason {
	case machine.StopPoweroff, machine.StopGuestExit:
		return verdict{code, res.Reason.String(), ""}
	case machine.StopPanic, machine.StopReboot:
		return verdict{code, res.Reason.String(), fmt.Sprintf("%s (exit %d)", res.Detail, code)}
	case machine.StopError:
		return verdict{ExitError, "error", ""}
	case machine.StopCanceled:
		return verdict{code, "signal", "stopped: " + res.Detail}
	}
	return verdict{code, res.Reason.String(), fmt.Sprintf("guest %s: %s on vCPU %d at RIP %#x", res.Reason, res.Detail, res.VCPU, res.RIP)}
}

var (
	errUserQuit  = errors.New("quit from the console (Ctrl-A x)")
	errTimeout   = errors.New("timeout")
	errExpected  = errors.New("console matched --expect")
	errPanicLine = errors.New("guest kernel panic on the console")
)

type failOnError struct{ line string }

func (e *failOnError) Error() string { return "console matched --fail-on: " + e.line }

func compileFlag(name, expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, usageError{fmt.Errorf("--%s: %w", name, err)}
	}
	return re, nil
}

// metricsFile is the JSON --metrics writes.
type metricsFile struct {
	BootTimeMS float64 `json:"boot_time_ms,omitempty"`
	FirstRunMS float64 `json:"first_kvm_run_ms,omitempty"` // from govm's main, after flag parsing
	// CLOCK_MONOTONIC at the first KVM_RUN, for a start-to-run time taken
	// from before the exec.
	FirstRunMonotonicNS int64 `json:"first_kvm_run_monotonic_ns,omitempty"`
	// Memory, in KiB: govm's peak resident set, the guest RAM the guest
	// touched, and the difference (what govm itself costs).
	PeakRSSKB       uint64 `json:"peak_rss_kb,omitempty"`
	GuestResidentKB uint64 `json:"guest_resident_kb"`
	OverheadKB      int64  `json:"vmm_overhead_kb,omitempty"`
	// What the Go runtime reports of govm's own heap, in KiB: all it
	// allocated so far (garbage included) and what it maps in all.
	GoAllocsKB  uint64             `json:"go_heap_allocs_kb"`
	GoMappedKB  uint64             `json:"go_runtime_mapped_kb"`
	Exits       map[string]uint64  `json:"exits"`
	VCPUYields  uint64             `json:"vcpu_yields"` // passes through Go's scheduler (osthread.Yielder)
	SerialBytes uint64             `json:"serial_bytes"`
	NICs        []machine.NICStats `json:"nics,omitempty"`
	GoMaxProcs  int                `json:"gomaxprocs"` // as the machine left it
	Reason      string             `json:"reason"`
	ExitCode    int                `json:"exit_code"`
}

// goMetricKB reads one of the Go runtime's byte counters, in KiB.
func goMetricKB(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64() / 1024
}

func writeMetrics(w io.Writer, st machine.Stats, v verdict) error {
	peak := peakRSSKB()
	b, err := json.MarshalIndent(metricsFile{
		BootTimeMS:          float64(st.BootTime.Microseconds()) / 1000,
		FirstRunMS:          float64(st.FirstRun.Microseconds()) / 1000,
		FirstRunMonotonicNS: st.FirstRunAt,
		PeakRSSKB:           peak,
		GuestResidentKB:     st.GuestResident / 1024,
		OverheadKB:          int64(peak) - int64(st.GuestResident/1024),
		GoAllocsKB:          goMetricKB("/gc/heap/allocs:bytes"),
		GoMappedKB:          goMetricKB("/memory/classes/total:bytes"),
		Exits:               st.Exits,
		VCPUYields:          st.VCPUYields,
		SerialBytes:         st.SerialBytes,
		NICs:                st.NICs,
		GoMaxProcs:          runtime.GOMAXPROCS(0),
		Reason:              v.kind,
		ExitCode:            v.code,
	}, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// peakRSSKB is this process's peak resident set (VmHWM), 0 if unknown.
func peakRSSKB() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb uint64
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &kb); err == nil {
			return kb
		}
	}
	return 0
}

// The fixes for a host whose /dev/kvm govm cannot use, as govm run and
// govm check word them.
const (
	fixNoKVM         = "load kvm_intel or kvm_amd (modprobe), or enable virtualization in the firmware"
	fixKVMPermission = "'sudo usermod -aG kvm $USER' and log in again, or a udev rule KERNEL==\"kvm\", GROUP=\"kvm\", MODE=\"0660\""
)

// explain turns host errors into one actionable line.
func explain(err error, path string) error {
	switch {
	case errors.Is(err, kvm.ErrNoDevice):
		return fmt.Errorf("%w (%s)", err, fixNoKVM)
	case errors.Is(err, kvm.ErrPermission):
		return fmt.Errorf("%w (%s)", err, fixKVMPermission)
	}
	return err
}
