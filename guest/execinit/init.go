package execinit

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/guest"
)

// portWait bounds the wait for the console's ports to appear after the
// modules are loaded (the driver adds them as the device announces them).
const portWait = 20 * time.Second

// Main is the init. It never returns: the VM ends with the command's
// status, or StatusInitError with the reason on the control port (or the
// serial console before that port exists).
func Main() {
	status, err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "govm init: %v\n", err)
	}
	end(status)
}

// end stops the VM with status: the exit port, or a power-off if that
// fails.
func end(status int) {
	unix.Sync()
	if err := guest.Exit(uint8(status)); err != nil {
		fmt.Fprintf(os.Stderr, "govm init: %v\n", err)
	}
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

// errNotFound is a command not in the caller's PATH.
var errNotFound = errors.New("command not found")

func run() (int, error) {
	if err := mountAll("/", kernelMounts[:3], true); err != nil {
		return StatusInitError, err
	}
	if err := loadModules(ModulesList); err != nil {
		return StatusInitError, err
	}
	ports, err := findPorts([]string{PortControl, PortStdin, PortStdout, PortStderr}, portWait)
	if err != nil {
		return StatusInitError, err
	}
	ctl, err := os.OpenFile(ports[PortControl], os.O_RDWR, 0)
	if err != nil {
		return StatusInitError, err
	}
	fail := func(err error) (int, error) {
		fmt.Fprintf(ctl, "%s%v\n", MsgError, err)
		return StatusInitError, err
	}
	lines := bufio.NewReader(ctl)
	first, err := lines.ReadBytes('\n')
	if err != nil {
		return fail(fmt.Errorf("reading the config: %w", err))
	}
	cfg, err := parseConfig(first)
	if err != nil {
		return fail(err)
	}
	streams, err := openStreams(ports)
	if err != nil {
		return fail(err)
	}
	if err := upLoopback(); err != nil {
		return fail(fmt.Errorf("loopback: %w", err))
	}
	allowUnprivileged()
	if err := configureNet(cfg.Net); err != nil {
		return fail(err)
	}
	if err := mountRoot(cfg); err != nil {
		return fail(err)
	}
	if !cfg.RootRW {
		if err := writeResolvConf(cfg.Net); err != nil {
			return fail(fmt.Errorf("resolv.conf: %w", err))
		}
	}
	return runCommand(cfg, streams, ctl, lines)
}

// loadModules loads the modules the list names, in order; a module
// already present (built in, or loaded) is fine.
func loadModules(list string) error {
	b, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, p := range strings.Fields(string(b)) {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading %s: %w", filepath.Base(p), err)
		}
	}
	return nil
}

// findPorts waits until every named port is in sysfs and returns each
// one's device path.
func findPorts(names []string, wait time.Duration) (map[string]string, error) {
	deadline := time.Now().Add(wait)
	for {
		found := map[string]string{}
		dirs, _ := filepath.Glob("/sys/class/virtio-ports/vport*")
		for _, d := range dirs {
			n, err := os.ReadFile(filepath.Join(d, "name"))
			if err == nil {
				found[strings.TrimSpace(string(n))] = "/dev/" + filepath.Base(d)
			}
		}
		missing := ""
		for _, n := range names {
			if _, err := os.Stat(found[n]); found[n] == "" || err != nil {
				missing = n
			}
		}
		if missing == "" {
			return found, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("console port %s did not appear in %v (is virtio_console loaded?)", missing, wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kernelMounts are the kernel's file systems a command expects; the
// init itself needs the first three.
var kernelMounts = []struct{ src, dir, fs, opts string }{
	{"proc", "/proc", "proc", ""},
	{"sys", "/sys", "sysfs", ""},
	{"dev", "/dev", "devtmpfs", ""},
	{"devpts", "/dev/pts", "devpts", "newinstance,ptmxmode=0666,mode=0620"},
	{"shm", "/dev/shm", "tmpfs", "mode=1777"},
}

// devSymlinks are the links into /proc that udev or systemd make in
// /dev on every distribution (systemd's tmpfiles.d/static-nodes), which
// scripts use: /dev/stdin, /dev/fd/N.
var devSymlinks = []struct{ name, target string }{
	{"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
	{"core", "/proc/kcore"},
}

// devLinks makes devSymlinks in dev (a fresh devtmpfs).
func devLinks(dev string) error {
	for _, l := range devSymlinks {
		if err := os.Symlink(l.target, filepath.Join(dev, l.name)); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("/dev/%s: %w", l.name, err)
		}
	}
	return nil
}

// mountAll mounts each of ms at its directory under root, made if
// missing; with busyOK, one already mounted there is fine.
func mountAll(root string, ms []struct{ src, dir, fs, opts string }, busyOK bool) error {
	for _, m := range ms {
		dir := filepath.Join(root, m.dir)
		os.MkdirAll(dir, 0o755)
		if err := unix.Mount(m.src, dir, m.fs, 0, m.opts); err != nil && !(busyOK && errors.Is(err, unix.EBUSY)) {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	return nil
}

// streams are the command's standard files.
type streams struct{ stdin, stdout, stderr *os.File }

func openStreams(ports map[string]string) (streams, error) {
	var s streams
	var err error
	if s.stdin, err = os.Open(ports[PortStdin]); err != nil {
		return s, err
	}
	if s.stdout, err = os.OpenFile(ports[PortStdout], os.O_WRONLY, 0); err != nil {
		return s, err
	}
	if s.stderr, err = os.OpenFile(ports[PortStderr], os.O_WRONLY, 0); err != nil {
		return s, err
	}
	return s, nil
}

// mountRoot builds the command's root at /govm/root and enters it.
func mountRoot(cfg *Config) error {
	const lower, rw, root = "/govm/lower", "/govm/rw", "/govm/root"
	for _, d := range []string{lower, rw, root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var flags uintptr
	if !cfg.RootRW {
		flags = unix.MS_RDONLY
	}
	if err := mountVirtiofs(RootTag, lower, flags); err != nil {
		return err
	}
	newRoot := lower
	if !cfg.RootRW {
		if err := unix.Mount("tmpfs", rw, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("mount tmpfs: %w", err)
		}
		for _, d := range []string{rw + "/upper", rw + "/work"} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return err
			}
		}
		opts := "lowerdir=" + lower + ",upperdir=" + rw + "/upper,workdir=" + rw + "/work"
		if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
			return fmt.Errorf("mount overlay: %w", err)
		}
		newRoot = root
	}
	for _, m := range cfg.Mounts {
		var f uintptr
		if m.ReadOnly {
			f = unix.MS_RDONLY
		}
		if err := mountVirtiofs(m.Tag, filepath.Join(newRoot, m.Path), f); err != nil {
			return err
		}
	}
	if err := mountAll(newRoot, kernelMounts, false); err != nil {
		return err
	}
	if err := devLinks(filepath.Join(newRoot, "dev")); err != nil {
		return err
	}
	if err := unix.Chroot(newRoot); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	_ = unix.Sethostname([]byte("govm"))
	if err := os.Chdir(cfg.Dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	return nil
}

// shareReadAheadKB is the read-ahead window of a share: four of the
// largest reads the server takes (share.MaxWrite, which go-fuse also
// offers as max_pages), so a sequential read is served by 1 MiB requests
// with some in flight, not the default 128 KiB ones: an eighth of the
// requests, notifications and interrupts per byte.
const shareReadAheadKB = "4096"

// mountVirtiofs mounts a share, waiting briefly for its device: the
// driver registers the tag when it probes the device.
func mountVirtiofs(tag, dir string, flags uintptr) error {
	var err error
	for range 200 {
		if err = unix.Mount(tag, dir, "virtiofs", flags, ""); err == nil {
			setReadAhead(dir)
			return nil
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("mount virtiofs %s on %s: %w", tag, dir, err)
}

// setReadAhead widens the read-ahead of the file system mounted at dir
// (its backing device's, /sys/class/bdi/MAJOR:MINOR); a failure leaves
// the kernel's default.
func setReadAhead(dir string) {
	var st unix.Stat_t
	if unix.Stat(dir, &st) != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	_ = os.WriteFile(p, []byte(shareReadAheadKB), 0)
}

// runCommand runs the command as the caller and returns its status.
func runCommand(cfg *Config, s streams, ctl *os.File, lines *bufio.Reader) (int, error) {
	path, err := lookPath(cfg)
	if err != nil {
		if errors.Is(err, errNotFound) || errors.Is(err, os.ErrNotExist) {
			return notStarted(cfg, s, ctl, err, StatusNotFound)
		}
		return notStarted(cfg, s, ctl, err, StatusNotExec)
	}
	cmd := &exec.Cmd{Path: path, Args: cfg.Args, Env: cfg.Env, Dir: cfg.Dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: cfg.UID, Gid: cfg.GID, Groups: cfg.Groups},
	}
	if cfg.TTY {
		return runOnTTY(cmd, cfg, s, ctl, lines)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.stdin, s.stdout, s.stderr
	if err := cmd.Start(); err != nil {
		return notStarted(cfg, s, ctl, err, StatusNotExec)
	}
	fmt.Fprintln(ctl, MsgStarted)
	return waitStatus(cmd.Wait()), nil
}

// notStarted reports a command that could not start as a shell does,
// on its stderr, and ends with status: the VM's verdict is the command's
// from here on, as if it had run.
func notStarted(cfg *Config, s streams, ctl *os.File, err error, status int) (int, error) {
	fmt.Fprintf(s.stderr, "govm: %s: %v\n", cfg.Args[0], err)
	fmt.Fprintln(ctl, MsgStarted)
	return status, nil
}

// lookPath finds the command in the caller's PATH, as its shell would.
func lookPath(cfg *Config) (string, error) {
	name := cfg.Args[0]
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(cfg.Dir, p)
		}
		st, err := os.Stat(p)
		if err != nil {
			return "", errors.Unwrap(err) // the errno alone, as a shell says it
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", os.ErrPermission
		}
		return p, nil
	}
	path := ""
	for _, e := range cfg.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(cfg.Dir, p)
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errNotFound
}

// waitStatus maps how the command ended to a shell's exit status.
func waitStatus(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return statusSignalled + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return StatusInitError
}
