package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/govm/govm/boot"
	"github.com/govm/govm/execimg"
	"github.com/govm/govm/guest/execinit"
	"github.com/govm/govm/machine"
	"github.com/govm/govm/virtio"
)

// execCmdline follows DefaultCmdline for govm exec: kernel messages are
// for --console-log, not for the command's terminal, and a quiet boot
// spends fewer exits on the UART.
const execCmdline = "quiet"

// cwdTag is the tag of the share of the working directory.
const cwdTag = "govm-cwd"

type execOptions struct {
	runOptions
	rootRW  bool
	modules string
}

func newExecCmd(stdin *os.File, stdout, stderr io.Writer, code *int) *cobra.Command {
	o := execOptions{}
	c := &cobra.Command{
		Use:   "exec --kernel BZIMAGE [flags] -- COMMAND [ARGS...]",
		Short: "Run a host command inside a new VM and return its exit status",
		Long: `Boot the kernel and run COMMAND in it, on the host's own files: the host's root
is mounted read-only with a writable layer in guest memory (nothing written
there reaches the host), the working directory is mounted read-write, and
COMMAND runs as you, in the same directory, with your environment. Its stdin,
stdout and stderr are govm's; on a terminal it gets one of its own (Ctrl-A x
quits). govm exits with COMMAND's status (128+N for signal N, 127 when it
does not exist). Kernel messages go to --console-log, and to stderr only when
the VM fails before COMMAND ran.

The initramfs is built from govm's own executable and the kernel's modules
(virtio_pci, virtio_console, virtiofs, overlay and what they need), found in
/lib/modules/RELEASE for the kernel's release or in --modules DIR, and cached.

  go test -exec 'govm exec --kernel bzImage --' ./...

Exit codes other than COMMAND's: 1 for govm's own errors, 125 when the guest
could not start COMMAND, and those of 'govm run' (33 crash, 34 panic, 35
timeout) when the VM failed.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 || len(args) == 0 {
				return usageError{errors.New("exec: give the command after --, as in: govm exec --kernel bzImage -- uname -r")}
			}
			n, err := o.exec(args, stdin, stdout, stderr)
			*code = n
			return err
		},
	}
	o.addVMFlags(c)
	f := c.Flags()
	f.SetInterspersed(false)
	// What differs from govm run: where the console and the shares go.
	f.Lookup("console-log").Usage = "write the kernel's console to this file (it is not shown otherwise)"
	f.Lookup("share").Usage = "also share HOSTDIR[:TAG][,ro], mounted at the same path in the guest (repeatable)"
	f.BoolVar(&o.rootRW, "rw", false, "mount the host's root read-write: the command's writes reach the host")
	f.StringVar(&o.modules, "modules", "", "kernel modules directory (default /lib/modules/RELEASE); 'none' for a kernel with the drivers built in")
	return c
}

// exec boots the VM for args and returns the command's status.
func (o *execOptions) exec(args []string, stdin *os.File, stdout, stderr io.Writer) (int, error) {
	started := time.Now()
	shares, err := parseShares(o.shares)
	if err != nil {
		return ExitError, err
	}
	o.shares = nil // config() must not add them a second time
	cfg, err := o.guestConfig(args, shares, stdin)
	if err != nil {
		return ExitError, err
	}
	image, err := o.image()
	if err != nil {
		return ExitError, err
	}
	o.initrd = image
	o.appends = append([]string{execCmdline}, o.appends...)

	var open []io.Closer
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	sink := &consoleSink{}
	mcfg, err := o.config(started, sink, stderr, &open)
	if err != nil {
		return ExitError, err
	}
	if _, err := o.outputs(sink, &open); err != nil {
		return ExitError, err
	}
	mcfg.Shares = machineShares(cfg, shares)
	for _, n := range mcfg.NICs {
		if g := n.Guest; g != nil {
			cfg.Net = append(cfg.Net, execinit.NetIface{
				MAC: net.HardwareAddr(n.MAC[:]).String(), Addr: g.IP, Gateway: g.Gateway, DNS: g.DNS, MTU: g.MTU,
			})
		}
	}

	ctl := newControl()
	in := io.Reader(stdin)
	var quit chan struct{}
	if cfg.TTY {
		quit = make(chan struct{})
		in = &escapeReader{r: stdin, quit: quit}
	}
	mcfg.Ports = []virtio.ConsolePort{
		{Name: execinit.PortControl, In: ctl.toGuest, Out: ctl},
		{Name: execinit.PortStdin, In: in},
		{Name: execinit.PortStdout, Out: stdout},
		{Name: execinit.PortStderr, Out: stderr},
	}
	ctl.sendConfig(cfg)
	m, err := machine.New(mcfg)
	if err != nil {
		return ExitError, explain(err, o.kvmPath)
	}
	defer m.Close()
	return o.runExec(m, len(mcfg.Shares), sink, ctl, cfg, stdin, stderr, quit)
}

// runExec runs the VM and turns how it ended into govm's exit status.
func (o *execOptions) runExec(m *machine.Machine, shares int, sink *consoleSink, ctl *control, cfg *execinit.Config, stdin *os.File, stderr io.Writer, quit chan struct{}) (int, error) {
	ctx, cancel, stop := vmContext(o.timeout)
	defer stop()
	sink.onMatch = func(k matchKind, line string) {
		if k == matchPanic {
			cancel(errPanicLine)
		}
	}
	if cfg.TTY {
		old, err := term.MakeRaw(int(stdin.Fd()))
		if err != nil {
			return ExitError, fmt.Errorf("terminal raw mode: %w", err)
		}
		defer term.Restore(int(stdin.Fd()), old)
		go func() {
			<-quit
			cancel(errUserQuit)
		}()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if cols, rows, err := term.GetSize(int(stdin.Fd())); err == nil {
					ctl.resize(rows, cols)
				}
			}
		}()
	}

	if err := confineVM(o.seccomp.mode, shares, stderr); err != nil {
		return ExitError, err
	}
	res := m.Run(ctx)
	sink.Flush()
	ctl.closeToGuest()
	v := decide(res, context.Cause(ctx))
	ranCommand, initErr := ctl.state()
	if ranCommand && res.Reason == machine.StopGuestExit {
		return res.Code, nil
	}
	// The VM ended without the command's verdict: say why, with the
	// console, which the user has not seen.
	switch {
	case v.kind == "error":
		return ExitError, fmt.Errorf("vCPU %d: %w", res.VCPU, res.Err)
	case v.kind == "quit":
		return ExitOK, nil
	case initErr != "":
		fmt.Fprintf(stderr, "govm: the guest could not run the command: %s\n", initErr)
	case v.kind == "timeout":
		// As govm run says it: where each vCPU and queue was.
		fmt.Fprintf(stderr, "govm: timeout after %v (exit %d) %s the command ran; the guest when stopped:\n",
			o.timeout, ExitTimeout, map[bool]string{true: "while", false: "before"}[ranCommand])
		for _, l := range res.State {
			fmt.Fprintf(stderr, "  %s\n", l)
		}
		if !ranCommand {
			fmt.Fprintf(stderr, "last console lines:\n%s\n", sink.Tail())
		}
	case ranCommand:
		fmt.Fprintf(stderr, "govm: the VM stopped while the command ran: %s\n", describe(v, res))
	default:
		fmt.Fprintf(stderr, "govm: the VM stopped before the command ran: %s; its console:\n%s\n", describe(v, res), sink.Tail())
	}
	if res.Reason == machine.StopGuestExit && !ranCommand {
		return execinit.StatusInitError, nil
	}
	return v.code, nil
}

// describe is one phrase for how the VM ended.
func describe(v verdict, res machine.Result) string {
	if v.message != "" {
		return v.message
	}
	return fmt.Sprintf("%s (exit %d)", res.Reason, v.code)
}

// guestConfig is what the init is told: the command, the caller, and
// what to mount.
func (o *execOptions) guestConfig(args []string, shares []machine.Share, stdin *os.File) (*execinit.Config, error) {
	dir, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("working directory: %w", err)
	}
	groups, _ := os.Getgroups()
	cfg := &execinit.Config{
		Args: args, Env: os.Environ(), Dir: dir,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), RootRW: o.rootRW,
	}
	for _, g := range groups {
		cfg.Groups = append(cfg.Groups, uint32(g))
	}
	if !o.rootRW && dir != "/" {
		cfg.Mounts = append(cfg.Mounts, execinit.Mount{Tag: cwdTag, Path: dir})
	}
	for _, s := range shares {
		cfg.Mounts = append(cfg.Mounts, execinit.Mount{Tag: s.Tag, Path: s.Dir, ReadOnly: s.ReadOnly})
	}
	if term.IsTerminal(int(stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd())) {
		cfg.TTY = true
		if cols, rows, err := term.GetSize(int(stdin.Fd())); err == nil {
			cfg.Rows, cfg.Cols = uint16(rows), uint16(cols)
		}
		if !hasEnv(cfg.Env, "TERM") {
			cfg.Env = append(cfg.Env, "TERM=xterm-256color")
		}
	}
	return cfg, nil
}

func hasEnv(env []string, name string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, name+"=") {
			return true
		}
	}
	return false
}

// machineShares are the virtio-fs devices: the host's root, the working
// directory (read-write) and the user's shares.
func machineShares(cfg *execinit.Config, extra []machine.Share) []machine.Share {
	shares := []machine.Share{{Dir: "/", Tag: execinit.RootTag, ReadOnly: !cfg.RootRW}}
	for _, m := range cfg.Mounts {
		if m.Tag == cwdTag {
			shares = append(shares, machine.Share{Dir: m.Path, Tag: cwdTag})
		}
	}
	return append(shares, extra...)
}

// image finds the kernel's modules and returns the cached initramfs.
func (o *execOptions) image() (string, error) {
	var mods []execimg.Module
	if o.modules != "none" {
		dir := o.modules
		if dir == "" {
			kf, err := os.Open(o.kernel)
			if err != nil {
				return "", fmt.Errorf("--kernel %s: %w", o.kernel, errors.Unwrap(err))
			}
			st, err := kf.Stat()
			if err != nil {
				kf.Close()
				return "", err
			}
			release, err := boot.KernelRelease(kf, st.Size())
			kf.Close()
			if err != nil {
				return "", fmt.Errorf("--kernel %s: no release to find its modules by (%v); pass --modules DIR", o.kernel, err)
			}
			dir = filepath.Join("/lib/modules", release)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return "", fmt.Errorf("no kernel modules in %s (the guest needs %s); pass --modules DIR, or --modules none for a kernel with them built in",
				dir, strings.Join(execimg.Needed, ", "))
		}
		var err error
		needed := execimg.Needed
		if len(o.nets) > 0 {
			needed = append(append([]string{}, needed...), execimg.NeededNet...)
		}
		if mods, err = execimg.Resolve(dir, needed); err != nil {
			return "", err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding govm's executable: %w", err)
	}
	path, err := execimg.Build(execimg.Options{Init: self, Modules: mods})
	if err != nil {
		return "", fmt.Errorf("building the initramfs: %w", err)
	}
	return path, nil
}

// parseShares parses --share HOSTDIR[:TAG][,ro] values; the default tag
// is share0, share1, ...
func parseShares(specs []string) ([]machine.Share, error) {
	var out []machine.Share
	tags := map[string]bool{execinit.RootTag: true, cwdTag: true}
	for i, spec := range specs {
		s, err := parseShare(spec, i)
		if err != nil {
			return nil, usageError{fmt.Errorf("--share %s: %w", spec, err)}
		}
		if tags[s.Tag] {
			return nil, usageError{fmt.Errorf("--share %s: tag %s is taken", spec, s.Tag)}
		}
		tags[s.Tag] = true
		out = append(out, s)
	}
	return out, nil
}

func parseShare(spec string, i int) (machine.Share, error) {
	path, opts, _ := strings.Cut(spec, ",")
	var s machine.Share
	for o := range strings.SplitSeq(opts, ",") {
		switch o {
		case "":
		case "ro":
			s.ReadOnly = true
		default:
			return s, fmt.Errorf("unknown option %q (want ro)", o)
		}
	}
	dir, tag, hasTag := strings.Cut(path, ":")
	if !hasTag {
		tag = fmt.Sprintf("share%d", i)
	}
	if tag == "" || len(tag) > virtio.FSTagMax {
		return s, fmt.Errorf("tag must be 1 to %d bytes", virtio.FSTagMax)
	}
	if dir == "" {
		return s, errors.New("no directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return s, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return s, errors.Unwrap(err)
	}
	if !st.IsDir() {
		return s, errors.New("not a directory")
	}
	s.Dir, s.Tag = abs, tag
	return s, nil
}

// control is the host's end of the control port: it sends the config
// and window sizes, and reads the init's reports.
type control struct {
	toGuest *io.PipeReader
	w       *io.PipeWriter
	wmu     sync.Mutex

	mu      sync.Mutex
	line    []byte
	started bool
	initErr string
}

func newControl() *control {
	r, w := io.Pipe()
	return &control{toGuest: r, w: w}
}

// sendConfig queues the config line; the port takes it once the guest
// opens the port.
func (c *control) sendConfig(cfg *execinit.Config) {
	c.wmu.Lock()
	go func() {
		defer c.wmu.Unlock()
		_ = execinit.WriteConfig(c.w, cfg)
	}()
}

func (c *control) resize(rows, cols int) {
	go func() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		fmt.Fprintf(c.w, "%s%d %d\n", execinit.MsgWinsize, rows, cols)
	}()
}

func (c *control) closeToGuest() { c.w.Close() }

// Write takes the init's lines.
func (c *control) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.line = append(c.line, p...)
	for {
		i := bytes.IndexByte(c.line, '\n')
		if i < 0 {
			break
		}
		l := string(c.line[:i])
		c.line = c.line[i+1:]
		switch {
		case l == execinit.MsgStarted:
			c.started = true
		case strings.HasPrefix(l, execinit.MsgError):
			c.initErr = strings.TrimPrefix(l, execinit.MsgError)
		}
	}
	if len(c.line) > 4096 {
		c.line = c.line[:0] // a guest that never ends its line gets no memory
	}
	return len(p), nil
}

func (c *control) state() (started bool, initErr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started, c.initErr
}

// escapeReader passes a terminal's input with the console escapes
// applied: Ctrl-A x closes quit and ends the input.
type escapeReader struct {
	r       io.Reader
	quit    chan struct{}
	pending bool
	done    bool
	buf     []byte
}

func (e *escapeReader) Read(p []byte) (int, error) {
	for {
		if len(e.buf) > 0 {
			n := copy(p, e.buf)
			e.buf = e.buf[n:]
			return n, nil
		}
		if e.done {
			return 0, io.EOF
		}
		raw := make([]byte, len(p))
		n, err := e.r.Read(raw)
		out, q := consoleFilter(raw[:n], &e.pending)
		e.buf = out
		if q {
			e.done = true
			close(e.quit)
		}
		if err != nil && len(e.buf) == 0 {
			return 0, err
		}
	}
}
