package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govm/govm/hostinfo"
	"github.com/govm/govm/kvm"
	"github.com/govm/govm/kvm/kvmtest"
	"github.com/govm/govm/machine"
)

func hostinfoPaths(cpuinfo, modules string) hostinfo.Paths {
	return hostinfo.Paths{CPUInfo: cpuinfo, Modules: modules}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  bool
	}{
		{"512M", 512 << 20, false},
		{"512", 512 << 20, false},
		{"2G", 2 << 30, false},
		{"2g", 2 << 30, false},
		{"1GiB", 1 << 30, false},
		{"1024K", 1 << 20, false},
		{"1T", 1 << 40, false},
		{"", 0, true},
		{"0", 0, true},
		{"-1G", 0, true},
		{"1.5G", 0, true},
		{"12Q", 0, true},
		{"G", 0, true},
		{"99999999999999999999", 0, true},
		{"9999999999999T", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.err {
			if !errors.Is(err, ErrBadSize) {
				t.Errorf("ParseSize(%q) = %d, %v; want ErrBadSize", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestConsoleFilter(t *testing.T) {
	tests := []struct {
		in   []string // chunks as read
		want string
		quit bool
	}{
		{[]string{"ls\r"}, "ls\r", false},
		{[]string{"a\x01x"}, "a", true},
		{[]string{"a\x01", "x"}, "a", true}, // escape split across reads
		{[]string{"\x01\x01b"}, "\x01b", false},
		{[]string{"\x01c"}, "\x01c", false},
	}
	for _, tt := range tests {
		var got []byte
		quit, pending := false, false
		for _, c := range tt.in {
			out, q := consoleFilter([]byte(c), &pending)
			got = append(got, out...)
			if q {
				quit = true
				break
			}
		}
		if string(got) != tt.want || quit != tt.quit {
			t.Errorf("%q: got %q quit %v, want %q %v", tt.in, got, quit, tt.want, tt.quit)
		}
	}
}

// buildGovm builds the real binary for the CLI tests, or returns
// $GOVM_TEST_BINARY, a govm built the same way, where there is no Go
// toolchain to build one (the compiled tests run inside L1: e2e's
// TestKVMUnitTests).
func buildGovm(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("GOVM_TEST_BINARY"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "govm")
	// Built as make build builds it (static, trimmed, the Go heap on small
	// pages: see GOVM_LDFLAGS in the Makefile): BenchmarkStartup measures
	// this binary's memory.
	ldflags := os.Getenv("GOVM_LDFLAGS")
	if ldflags == "" {
		ldflags = "-X=runtime.godebugDefault=disablethp=1"
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags="+ldflags, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// govm-net beside it, where govm looks for it.
	cmd = exec.Command("go", "build", "-trimpath", "-o", filepath.Join(filepath.Dir(bin), netHelperName), "../govm-net")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build govm-net: %v\n%s", err, out)
	}
	return bin
}

// TestBadInput runs the built binary on bad input: each case must exit 1
// within 2 s with exactly one line on stderr and no Go panic or goroutine
// dump.
func TestBadInput(t *testing.T) {
	bin := buildGovm(t)
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(i*131 + i>>7)
	}
	junk := write("junk", random, 0o644)
	empty := write("empty", nil, 0o644)
	unreadable := write("unreadable", []byte("x"), 0o000)
	// A bzImage-shaped file with a boot protocol older than 2.12.
	old := make([]byte, 8192)
	old[0x1f1] = 1
	old[0x1fe], old[0x1ff] = 0x55, 0xaa
	copy(old[0x202:], "HdrS")
	old[0x206], old[0x207] = 0x04, 0x02
	oldKernel := write("old-bzimage", old, 0o644)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)

	tests := []struct {
		name string
		args []string
		want string   // a word the stderr line must contain
		env  []string // added to the environment
	}{
		{"no kernel flag", []string{"run"}, "kernel", nil},
		{"missing kernel", []string{"run", "--kernel", filepath.Join(dir, "nope")}, "no such file", nil},
		{"kernel is a directory", []string{"run", "--kernel", dir}, "not a regular file", nil},
		{"empty kernel", []string{"run", "--kernel", empty}, "empty", nil},
		{"random bytes as kernel", []string{"run", "--kernel", junk}, "not a Linux kernel", nil},
		{"old boot protocol", []string{"run", "--kernel", oldKernel}, "boot protocol too old", nil},
		{"missing initrd", []string{"run", "--kernel", junk, "--initrd", filepath.Join(dir, "nope")}, "initrd", nil},
		{"bad mem", []string{"run", "--kernel", junk, "--mem", "lots"}, "--mem", nil},
		{"zero mem", []string{"run", "--kernel", junk, "--mem", "0"}, "--mem", nil},
		{"huge mem", []string{"run", "--kernel", junk, "--mem", "99999999T"}, "--mem", nil},
		{"cpus 0", []string{"run", "--kernel", junk, "--cpus", "0"}, "--cpus", nil},
		{"cpus not a number", []string{"run", "--kernel", junk, "--cpus", "two"}, "cpus", nil},
		{"unknown flag", []string{"run", "--frobnicate"}, "unknown flag", nil},
		{"unknown command", []string{"fly"}, "unknown command", nil},
		{"no kvm device", []string{"run", "--kernel", junk, "--kvm", filepath.Join(dir, "kvm")}, "KVM", nil},
		{"net of no kind", []string{"run", "--kernel", junk, "--net", "bridge"}, "want tap", nil},
		{"user net unknown option", []string{"run", "--kernel", junk, "--net", "user,bogus=1"}, "unknown option", nil},
		{"user net too small", []string{"run", "--kernel", junk, "--net", "user,net=10.0.2.0/28"}, "too small", nil},
		{"user net host-ip", []string{"run", "--kernel", junk, "--net", "user,host-ip=10.0.2.1/24"}, "unknown option", nil},
		{"hostfwd port out of range", []string{"run", "--kernel", junk, "--net", "user,hostfwd=tcp::70000-:80"}, "out of range", nil},
		{"hostfwd port bound", []string{"run", "--kernel", junk, "--net", "user,hostfwd=tcp::" + busyPort + "-:80"}, "address already in use", nil},
		{"hostfwd port bound on a switch", []string{"run", "--kernel", junk, "--net", "user,switch=" + filepath.Join(dir, "fwd.sock") + ",hostfwd=tcp::" + busyPort + "-:80"}, "address already in use", nil},
		{"switch directory missing", []string{"run", "--kernel", junk, "--net", "user,switch=" + filepath.Join(dir, "nope", "s.sock")}, "no such file", nil},
		{"switch not a socket", []string{"run", "--kernel", junk, "--net", "user,switch=" + junk}, "not a socket", nil},
		{"user net, bad kernel", []string{"run", "--kernel", junk, "--net", "user,switch=" + filepath.Join(dir, "ok.sock")}, "not a Linux kernel", nil},
		{"socket missing", []string{"run", "--kernel", junk, "--net", "socket=" + filepath.Join(dir, "nope.sock")}, "no such file", nil},
		{"socket bad mtu", []string{"run", "--kernel", junk, "--net", "socket=/x,mtu=9"}, "mtu", nil},
		{"net name too long", []string{"run", "--kernel", junk, "--net", "tap=averyveryverylongname"}, "interface name", nil},
		{"net bad mac", []string{"run", "--kernel", junk, "--net", "tap=t0,mac=52:54:zz:00:00:01"}, "MAC", nil},
		{"net multicast mac", []string{"run", "--kernel", junk, "--net", "tap=t0,mac=01:00:5e:00:00:01"}, "multicast", nil},
		{"net bad host ip", []string{"run", "--kernel", junk, "--net", "tap,host-ip=10.0.2.1"}, "host-ip", nil},
		{"net unknown option", []string{"run", "--kernel", junk, "--net", "tap=t0,vhost=on"}, "unknown option", nil},
		{"net same tap twice", []string{"run", "--kernel", junk, "--net", "tap=t0", "--net", "tap=t0"}, "already", nil},
		{"negative timeout", []string{"run", "--kernel", junk, "--timeout", "-5s"}, "--timeout", nil},
		{"removed host-quirk flag", []string{"run", "--kernel", junk, "--xsave", "off"}, "unknown flag", nil},
		{"cpu-affinity not a list", []string{"run", "--kernel", junk, "--cpu-affinity", "x"}, "--cpu-affinity", nil},
		{"cpu-affinity too few", []string{"run", "--kernel", junk, "--cpus", "2", "--cpu-affinity", "0"}, "one per vCPU", nil},
		{"cpu-affinity unavailable", []string{"run", "--kernel", junk, "--cpu-affinity", "1000"}, "not one govm may run on", nil},
		{"bad debug override", []string{"run", "--kernel", junk}, "GOVM_DEBUG_IO_SCHED", []string{"GOVM_DEBUG_IO_SCHED=fifo"}},
		{"missing disk", []string{"run", "--kernel", junk, "--disk", filepath.Join(dir, "nope.img")}, "no such file", nil},
		{"disk is a directory", []string{"run", "--kernel", junk, "--disk", dir}, "directory", nil},
		{"same disk twice", []string{"run", "--kernel", junk, "--disk", junk, "--disk", junk}, "already", nil},
		{"bad disk option", []string{"run", "--kernel", junk, "--disk", junk + ",cache=none"}, "unknown option", nil},
		{"disk queues 0", []string{"run", "--kernel", junk, "--disk", junk + ",queues=0"}, "queues", nil},
		{"disk queues 17", []string{"run", "--kernel", junk, "--disk", junk + ",queues=17"}, "queues", nil},
		{"disk queues not a number", []string{"run", "--kernel", junk, "--disk", junk + ",queues=many"}, "queues", nil},
		{"bad expect regex", []string{"run", "--kernel", junk, "--expect", "("}, "--expect", nil},
		{"uroot and initrd", []string{"run", "--kernel", junk, "--initrd", junk, "--uroot", "./x"}, "uroot", nil},
		{"uroot missing package", []string{"run", "--kernel", junk, "--uroot", "./nope"}, "nope", nil},
		{"uroot not a command", []string{"run", "--kernel", junk, "--uroot", "github.com/govm/govm/guest"}, "not a command", nil},
		{"uroot without go", []string{"run", "--kernel", junk, "--uroot", "./x"}, "needs a Go toolchain", []string{"PATH=" + dir}},
		{"initramfs without -o", []string{"initramfs", "./x"}, "-o", nil},
		{"initramfs without packages", []string{"initramfs", "-o", filepath.Join(dir, "out.cpio")}, "package", nil},
	}
	if os.Geteuid() != 0 {
		tests = append(tests, struct {
			name string
			args []string
			want string
			env  []string
		}{"unreadable kernel", []string{"run", "--kernel", unreadable}, "permission denied", nil})
	}
	// These resolve the package with the go command, which L1 (where the
	// compiled tests also run) does not have.
	needGo := map[string]bool{"uroot missing package": true, "uroot not a command": true}
	_, goErr := exec.LookPath("go")
	// These get past opening /dev/kvm before the kernel is read; where
	// there is none, make test runs them inside L1 (e2e's
	// TestKVMUnitTests).
	needKVM := map[string]bool{"random bytes as kernel": true, "old boot protocol": true, "cpu-affinity unavailable": true,
		"user net, bad kernel": true}
	kvmErr := kvmtest.Available()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if needGo[tt.name] && goErr != nil {
				t.Skipf("no go command on PATH: %v", goErr)
			}
			if needKVM[tt.name] && kvmErr != nil {
				t.Skipf("no usable %s: %v", kvm.DevicePath, kvmErr)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Stdin = nil
			cmd.Env = append(os.Environ(), tt.env...)
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatal("did not exit within 2 s")
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != ExitError {
				t.Fatalf("exit %v, want %d; stderr %q", err, ExitError, stderr.String())
			}
			s := strings.TrimRight(stderr.String(), "\n")
			lines := strings.Split(s, "\n")
			if len(lines) != 1 {
				t.Fatalf("stderr has %d lines, want 1:\n%s", len(lines), s)
			}
			if strings.Contains(s, "goroutine") || strings.Contains(s, "panic") {
				t.Fatalf("Go panic on stderr: %s", s)
			}
			if !strings.Contains(strings.ToLower(s), strings.ToLower(tt.want)) {
				t.Fatalf("stderr %q lacks %q", s, tt.want)
			}
		})
	}
	// Nothing is left behind: no switch socket, and the forwarded port
	// is free again once govm is gone.
	if left, _ := filepath.Glob(filepath.Join(dir, "*.sock")); len(left) != 0 {
		t.Errorf("switch sockets left behind: %v", left)
	}
}

func TestVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := execute([]string{"version"}, os.Stdin, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "govm ") {
		t.Fatalf("code %d out %q err %q", code, out.String(), errb.String())
	}
}

func TestCheckFakeHosts(t *testing.T) {
	dir := t.TempDir()
	cpuinfo := func(flags string) string {
		p := filepath.Join(dir, "cpuinfo-"+strings.ReplaceAll(flags, " ", "_"))
		os.WriteFile(p, []byte("processor\t: 0\nflags\t\t: fpu "+flags+" sse\n"), 0o644)
		return p
	}
	modules := filepath.Join(dir, "modules")
	os.MkdirAll(filepath.Join(modules, "kvm_pvm"), 0o755)
	var out bytes.Buffer
	// A missing device fails whatever the CPU has.
	if runCheck(&out, filepath.Join(dir, "nokvm"), hostinfoPaths(cpuinfo("vmx"), modules)) {
		t.Fatalf("missing device passed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "modprobe") {
		t.Errorf("no fix suggested:\n%s", out.String())
	}
}

// On this machine's real /dev/kvm: kvm_pvm without vmx/svm must fail with
// the reason; a host with hardware virtualization must pass.
func TestCheckThisHost(t *testing.T) {
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skip("no /dev/kvm")
	}
	var out bytes.Buffer
	ok := runCheck(&out, "/dev/kvm", hostinfo.DefaultPaths)
	facts := hostinfo.Probe(hostinfo.DefaultPaths)
	if ok != facts.CanBootLinux() {
		t.Fatalf("check says %v, host can boot Linux: %v\n%s", ok, facts.CanBootLinux(), out.String())
	}
	if !ok && !strings.Contains(out.String(), "kvm_pvm") {
		t.Fatalf("failure does not name kvm_pvm:\n%s", out.String())
	}
}

func TestDecide(t *testing.T) {
	canceled := machine.Result{Reason: machine.StopCanceled, Detail: "context canceled"}
	tests := []struct {
		name     string
		res      machine.Result
		cause    error
		wantCode int
		wantKind string
	}{
		{"poweroff", machine.Result{Reason: machine.StopPoweroff}, nil, ExitOK, "poweroff"},
		{"guest exit code", machine.Result{Reason: machine.StopGuestExit, Code: 7}, nil, 7, "exit"},
		{"reboot", machine.Result{Reason: machine.StopReboot, Detail: "guest reset"}, nil, ExitReboot, "reboot"},
		{"triple fault", machine.Result{Reason: machine.StopCrash, Detail: "triple fault"}, nil, ExitCrash, "crash"},
		{"pvpanic", machine.Result{Reason: machine.StopPanic, Detail: "guest kernel panic"}, nil, ExitPanic, "panic"},
		{"timeout", canceled, errTimeout, ExitTimeout, "timeout"},
		{"expect", canceled, errExpected, ExitOK, "expect"},
		{"fail-on", canceled, &failOnError{"oops"}, ExitFailOn, "fail-on"},
		{"panic line", canceled, errPanicLine, ExitPanic, "panic"},
		{"panic line, then the guest reset", machine.Result{Reason: machine.StopReboot, Detail: "guest reset"}, errPanicLine, ExitPanic, "panic"},
		{"fail-on, then poweroff", machine.Result{Reason: machine.StopPoweroff}, &failOnError{"FAIL"}, ExitFailOn, "fail-on"},
		{"expect, then reboot", machine.Result{Reason: machine.StopReboot, Detail: "guest reset"}, errExpected, ExitOK, "expect"},
		{"timeout raced by poweroff", machine.Result{Reason: machine.StopPoweroff}, errTimeout, ExitOK, "poweroff"},
		{"quit raced by reboot", machine.Result{Reason: machine.StopReboot, Detail: "guest reset"}, errUserQuit, ExitReboot, "reboot"},
		{"govm error beats a panic line", machine.Result{Reason: machine.StopError, Err: errors.New("ioctl")}, errPanicLine, ExitError, "error"},
		{"Ctrl-A x", canceled, errUserQuit, ExitOK, "quit"},
		{"signal", canceled, errors.New("govm received interrupt"), ExitSignal, "signal"},
		{"govm error", machine.Result{Reason: machine.StopError, Err: errors.New("ioctl")}, nil, ExitError, "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := decide(tt.res, tt.cause)
			if v.code != tt.wantCode || v.kind != tt.wantKind {
				t.Fatalf("decide = (%d, %q), want (%d, %q)", v.code, v.kind, tt.wantCode, tt.wantKind)
			}
		})
	}
}

// TestParseDisk: the --disk options a user can give, and what each sets.
func TestParseDisk(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want machine.Disk
		err  string
	}{
		{"a.img", machine.Disk{Path: "a.img"}, ""},
		{"a.img,ro,serial=s1", machine.Disk{Path: "a.img", ReadOnly: true, Serial: "s1"}, ""},
		{"a.img,queues=4", machine.Disk{Path: "a.img", Queues: 4}, ""},
		{"a.img,queues=16,rw", machine.Disk{Path: "a.img", Queues: 16}, ""},
		{"a.img,queues=0", machine.Disk{}, "queues"},
		{"a.img,queues=-1", machine.Disk{}, "queues"},
		{"a.img,queues=", machine.Disk{}, "queues"},
		{",ro", machine.Disk{}, "no path"},
		{"a.img,serial=123456789012345678901", machine.Disk{}, "serial"},
	} {
		d, err := parseDisk(tc.spec)
		switch {
		case tc.err == "" && (err != nil || d != tc.want):
			t.Errorf("%q: %+v, %v; want %+v", tc.spec, d, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want one about %s", tc.spec, err, tc.err)
		}
	}
}
