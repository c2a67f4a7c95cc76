package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/govm/govm/kvm"
	"github.com/govm/govm/kvm/kvmtest"
)

// tinyELF builds an x86_64 ELF "kernel" whose 64-bit entry point runs code:
// enough to drive the whole CLI on this host's own /dev/kvm, where a real
// Linux kernel cannot boot.
func tinyELF(code []byte) []byte {
	const (
		ehSize  = 64
		phSize  = 56
		loadAt  = 0x100000
		codeOff = ehSize + phSize
	)
	b := make([]byte, codeOff+len(code))
	le := binary.LittleEndian
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le.PutUint16(b[16:], 2)    // ET_EXEC
	le.PutUint16(b[18:], 62)   // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], loadAt+codeOff) // entry
	le.PutUint64(b[32:], ehSize)         // phoff
	le.PutUint16(b[52:], ehSize)
	le.PutUint16(b[54:], phSize)
	le.PutUint16(b[56:], 1) // phnum
	ph := b[ehSize:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // R+X
	le.PutUint64(ph[8:], 0) // offset
	le.PutUint64(ph[16:], loadAt)
	le.PutUint64(ph[24:], loadAt)
	le.PutUint64(ph[32:], uint64(len(b)))
	le.PutUint64(ph[40:], uint64(len(b)))
	le.PutUint64(ph[48:], 0x1000)
	copy(b[codeOff:], code)
	return b
}

// Guest code: print "OK\n" on COM1, then either write 7 to the exit port
// or spin forever.
var (
	printOK  = []byte{0x66, 0xba, 0xf8, 0x03, 0xb0, 'O', 0xee, 0xb0, 'K', 0xee, 0xb0, '\n', 0xee}
	exit7    = []byte{0xb0, 0x07, 0xe6, 0xf4, 0xeb, 0xfe}
	spin     = []byte{0xeb, 0xfe}
	poweroff = []byte{0x66, 0xba, 0x00, 0x06, 0xb0, 0x34, 0xee, 0xeb, 0xfe}
)

// writeTinyKernel writes a tinyELF of the code pieces to dir/name and
// returns its path.
func writeTinyKernel(t testing.TB, dir, name string, code ...[]byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, tinyELF(bytes.Join(code, nil)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readMetrics reads the file govm's --metrics wrote.
func readMetrics(t testing.TB, path string) metricsFile {
	t.Helper()
	var m metricsFile
	if b, err := os.ReadFile(path); err != nil || json.Unmarshal(b, &m) != nil {
		t.Fatalf("metrics: %s %v", b, err)
	}
	return m
}

func TestRunTinyKernel(t *testing.T) {
	kvmtest.Require(t)
	bin := buildGovm(t)
	dir := t.TempDir()
	exits := writeTinyKernel(t, dir, "exit7", printOK, exit7)
	spins := writeTinyKernel(t, dir, "spin", printOK, spin)
	off := writeTinyKernel(t, dir, "poweroff", printOK, poweroff)
	logFile := filepath.Join(dir, "console.log")
	metrics := filepath.Join(dir, "metrics.json")

	tests := []struct {
		name       string
		args       []string
		wantExit   int
		wantStdout string
		wantStderr string
		env        []string
	}{
		{"guest exit code passes through", []string{"--kernel", exits}, 7, "OK\n", "", nil},
		{"poweroff exits 0", []string{"--kernel", off}, 0, "OK\n", "", nil},
		{"console log and metrics", []string{"--kernel", exits, "--console-log", logFile, "--metrics", metrics}, 7, "OK\n", "", nil},
		{"timeout", []string{"--kernel", spins, "--timeout", "1s"}, ExitTimeout, "OK\n", `timeout after 1s \(exit 35\); the guest when stopped:\n  vCPU 0: rip 0x[0-9a-f]+ if=[01] runnable; lapic .*; code ([0-9a-f]{2} ){8}<eb> fe`, nil},
		// --expect matches a line before its newline too (a prompt), so
		// govm may stop before the guest writes the newline.
		{"expect", []string{"--kernel", spins, "--expect", "^OK$", "--timeout", "20s"}, 0, "OK", "", nil},
		{"fail-on", []string{"--kernel", spins, "--fail-on", "O.", "--timeout", "20s"}, ExitFailOn, "OK", "matched --fail-on", nil},
		{"stdin from a pipe", []string{"--kernel", exits, "--cpus", "2", "--mem", "128M"}, 7, "OK\n", "", nil},
		// Once confined, a call off the allow-list kills govm before the
		// guest runs, with the documented status and the call's stack.
		{"seccomp kills a forbidden call", []string{"--kernel", exits}, 2, "",
			`(?s)SIGSYS: bad system call.*golang.org/x/sys/unix.Socket`, []string{forbiddenCallEnv + "=1"}},
		{"seccomp off", []string{"--kernel", exits, "--seccomp=off"}, 7, "OK\n", "socket was not stopped", []string{forbiddenCallEnv + "=1"}},
		{"seccomp log", []string{"--kernel", exits, "--seccomp=log"}, 7, "OK\n", "socket was not stopped", []string{forbiddenCallEnv + "=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"run"}, tt.args...)...)
			cmd.Env = append(os.Environ(), tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if strings.Contains(tt.name, "pipe") {
				cmd.Stdin = strings.NewReader("typed input\n")
			}
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantExit {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.wantExit, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q, want prefix %q", stdout.String(), tt.wantStdout)
			}
			if tt.wantStderr != "" && !regexp.MustCompile(tt.wantStderr).MatchString(stderr.String()) {
				t.Errorf("stderr %q does not match %q", stderr.String(), tt.wantStderr)
			}
		})
	}
	if b, err := os.ReadFile(logFile); err != nil || string(b) != "OK\n" {
		t.Errorf("console log %q, %v", b, err)
	}
	m := readMetrics(t, metrics)
	if m.ExitCode != 7 || m.Exits["IO"] < 4 || m.SerialBytes != 3 || m.Reason != "exit" {
		t.Errorf("metrics %+v", m)
	}
	if m.FirstRunMS <= 0 || m.PeakRSSKB == 0 || m.OverheadKB <= 0 || m.GuestResidentKB == 0 {
		t.Errorf("metrics lack the start-up and memory figures: %+v", m)
	}
}

// TestProcs checks the Ps govm gives the Go runtime (setProcs): enough
// for its vCPUs in KVM_RUN plus one, even when it may run on one CPU only,
// unless the user set GOMAXPROCS.
func TestProcs(t *testing.T) {
	kvmtest.Require(t)
	bin := buildGovm(t)
	dir := t.TempDir()
	kernel := writeTinyKernel(t, dir, "exit7", printOK, exit7)
	tests := []struct {
		name   string
		oneCPU bool
		env    string
		cpus   string
		want   int
	}{
		// vCPUs, the virtio-rng worker, and one.
		{"one CPU, 2 vCPUs", true, "", "2", 4},
		{"one CPU, 1 vCPU", true, "", "1", 3},
		{"GOMAXPROCS set", true, "GOMAXPROCS=1", "2", 1},
		{"all CPUs", false, "", "1", max(runtime.NumCPU(), 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metrics := filepath.Join(dir, "metrics.json")
			cmd := exec.Command(bin, "run", "--kernel", kernel, "--cpus", tt.cpus, "--mem", "64M", "--metrics", metrics, "--timeout", "20s")
			cmd.Env = os.Environ()
			if tt.env != "" {
				cmd.Env = append(cmd.Env, tt.env)
			}
			if tt.oneCPU {
				// The child inherits the affinity of the thread that
				// forks it. The subtest's goroutine ends still locked,
				// so that thread exits instead of going back to the
				// runtime pinned to CPU 0.
				runtime.LockOSThread()
				var set unix.CPUSet
				set.Set(0)
				if err := unix.SchedSetaffinity(0, &set); err != nil {
					t.Fatal(err)
				}
			}
			var ee *exec.ExitError
			if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Fatalf("govm: %v", err)
			}
			if m := readMetrics(t, metrics); m.GoMaxProcs != tt.want {
				t.Errorf("gomaxprocs %d, want %d", m.GoMaxProcs, tt.want)
			}
		})
	}
}

// BenchmarkStartup runs the govm binary with a 512 MiB tiny guest that
// ends at its first instructions, and reports the time from just before
// govm's exec to its first KVM_RUN (from the monotonic stamp --metrics
// writes), next to testdata/rawrun's (the same KVM objects and nothing
// else, also a process of its own), and govm's own memory (peak RSS minus
// the guest RAM the guest touched), and the VMs started and ended per
// second. Issue #6's goals: first KVM_RUN within 5 ms, overhead within
// 5 MiB.
func BenchmarkStartup(b *testing.B) {
	if err := kvmtest.Available(); err != nil {
		b.Skipf("no usable %s: %v", kvm.DevicePath, err)
	}
	bin := buildGovm(b)
	dir := b.TempDir()
	kernel := writeTinyKernel(b, dir, "exit7", exit7)
	metrics := filepath.Join(dir, "metrics.json")
	raw := buildRawRun(b)
	var firstRun, sinceMain, rawRun, overhead, allocs, mapped []float64
	var elapsed time.Duration
	b.ResetTimer() // the builds are not the benchmark: let b.N grow past 1
	for range b.N {
		t0 := monotonicNS(b)
		start := time.Now()
		err := exec.Command(bin, "run", "--kernel", kernel, "--mem", "512M", "--metrics", metrics).Run()
		elapsed += time.Since(start)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			b.Fatalf("govm: %v, want exit 7", err)
		}
		m := readMetrics(b, metrics)
		firstRun = append(firstRun, float64(m.FirstRunMonotonicNS-t0)/1e6)
		sinceMain = append(sinceMain, m.FirstRunMS)
		overhead = append(overhead, float64(m.OverheadKB)/1024)
		allocs = append(allocs, float64(m.GoAllocsKB))
		mapped = append(mapped, float64(m.GoMappedKB))
		// The floor, taking turns with govm so both see the same host.
		rawRun = append(rawRun, rawFirstRun(b, raw))
	}
	b.ReportMetric(median(firstRun), "first-KVM_RUN-ms")
	b.ReportMetric(median(sinceMain), "first-KVM_RUN-since-main-ms")
	b.ReportMetric(median(rawRun), "raw.first-KVM_RUN-ms")
	b.ReportMetric(median(overhead), "overhead-MiB")
	b.ReportMetric(median(allocs), "go-heap-allocs-kB")
	b.ReportMetric(median(mapped), "go-mapped-kB")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "VMs/s")
}

// monotonicNS is CLOCK_MONOTONIC in nanoseconds: the clock govm and
// rawrun stamp their first KVM_RUN with.
func monotonicNS(t testing.TB) int64 {
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		t.Fatal(err)
	}
	return now.Nano()
}

// buildRawRun builds testdata/rawrun, the floor's program, as govm is
// built, or returns $GOVM_TEST_RAWRUN, one built so (where there is no Go
// toolchain: see buildGovm).
func buildRawRun(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("GOVM_TEST_RAWRUN"); bin != "" {
		return bin
	}
	bin := filepath.Join(t.TempDir(), "rawrun")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./testdata/rawrun")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build rawrun: %v\n%s", err, out)
	}
	return bin
}

// rawFirstRun runs rawrun and returns the milliseconds from just before
// its exec to its first KVM_RUN.
func rawFirstRun(t testing.TB, bin string) float64 {
	t0 := monotonicNS(t)
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("rawrun: %v", err)
	}
	at, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("rawrun printed %q", out)
	}
	return float64(at-t0) / 1e6
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// TestTerminalRestored runs govm with a pty as its terminal and checks the
// terminal settings are back as they were after each kind of exit.
func TestTerminalRestored(t *testing.T) {
	kvmtest.Require(t)
	bin := buildGovm(t)
	dir := t.TempDir()
	write := func(name string, code ...[]byte) string { return writeTinyKernel(t, dir, name, code...) }
	tests := []struct {
		name     string
		args     []string
		input    string
		wantExit int
	}{
		{"guest exit", []string{"--kernel", write("e", printOK, exit7)}, "", 7},
		{"timeout", []string{"--kernel", write("s", printOK, spin), "--timeout", "1s"}, "", ExitTimeout},
		{"ctrl-a x", []string{"--kernel", write("s2", printOK, spin), "--timeout", "20s"}, "\x01x", 0},
		{"error before boot", []string{"--kernel", filepath.Join(dir, "missing")}, "", ExitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ptmx, tty, err := pty.Open()
			if err != nil {
				t.Skipf("no pty: %v", err)
			}
			defer ptmx.Close()
			defer tty.Close()
			before, err := term.GetState(int(tty.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, append([]string{"run"}, tt.args...)...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { // drain the terminal so govm never blocks writing
				buf := make([]byte, 4096)
				for {
					if _, err := ptmx.Read(buf); err != nil {
						return
					}
				}
			}()
			if tt.input != "" {
				time.Sleep(500 * time.Millisecond)
				ptmx.Write([]byte(tt.input))
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var werr error
			select {
			case werr = <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("govm did not exit")
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(werr, &ee) {
				code = ee.ExitCode()
			}
			if code != tt.wantExit {
				t.Fatalf("exit %d, want %d", code, tt.wantExit)
			}
			after, err := term.GetState(int(tty.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			if *after != *before {
				t.Fatalf("terminal state not restored")
			}
		})
	}
}
