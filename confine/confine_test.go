package confine

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPolicyAssembles(t *testing.T) {
	for _, m := range []Mode{Kill, Log} {
		p := Policy(m)
		if _, err := p.Assemble(); err != nil {
			t.Fatalf("mode %d: %v", m, err)
		}
	}
	seen := map[string]bool{}
	for _, e := range allowList {
		if seen[e.name] {
			t.Errorf("%s listed twice", e.name)
		}
		seen[e.name] = true
		if e.why == "" {
			t.Errorf("%s has no reason", e.name)
		}
	}
	for _, never := range []string{"execve", "execveat", "fork", "vfork", "socket", "connect", "bind", "listen",
		"ptrace", "mount", "bpf", "perf_event_open", "init_module", "setuid", "io_uring_setup", "userfaultfd"} {
		if seen[never] {
			t.Errorf("%s is allowed", never)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Mode
		err  bool
	}{{"on", Kill, false}, {"", Kill, false}, {"log", Log, false}, {"off", Off, false}, {"yes", Off, true}} {
		m, err := ParseMode(tt.in)
		if (err != nil) != tt.err || (err == nil && m != tt.want) {
			t.Errorf("ParseMode(%q) = %v, %v", tt.in, m, err)
		}
	}
}

// childEnv makes the test binary, run again, act as a confined process.
const childEnv = "GOVM_CONFINE_TEST_CHILD"

// TestMain lets the test binary run the confined children of the tests
// below: a filter on every thread cannot be taken off a test process.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "allowed":
		must(Install(Kill))
		os.Stdout.WriteString("confined\n") // write: allowed
		f, err := os.CreateTemp("", "confine")
		must(err)
		f.Close()
		os.Remove(f.Name())
		os.Exit(0)
	case "socket":
		must(Install(Kill))
		os.Stdout.WriteString("confined\n")
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		os.Stdout.WriteString("socket returned\n")
		_, _ = fd, err
		os.Exit(0)
	case "execve":
		must(Install(Kill))
		os.Stdout.WriteString("confined\n")
		_ = unix.Exec("/bin/true", []string{"true"}, nil)
		os.Exit(0)
	case "caps":
		// Threads started before the drop lose them too.
		locked := make(chan struct{})
		for range 4 {
			go func() { runtime.LockOSThread(); locked <- struct{}{}; select {} }()
		}
		for range 4 {
			<-locked
		}
		must(DropCapabilities([]int{unix.CAP_CHOWN}))
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			b, _ := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "CapEff:") || strings.HasPrefix(l, "CapPrm:") {
					os.Stdout.WriteString(task.Name() + " " + l + "\n")
				}
			}
		}
		os.Exit(0)
	case "log":
		must(Install(Log))
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		must(err)
		unix.Close(fd)
		os.Stdout.WriteString("logged\n")
		os.Exit(0)
	}
}

func must(err error) {
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(100)
	}
}

func child(t *testing.T, what string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+what)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestForbiddenCallKills: after Install, an allowed call works and a
// forbidden one (a socket, an execve) kills the process with ExitKilled
// and Go's report naming the call's stack; in Log mode it runs.
func TestForbiddenCallKills(t *testing.T) {
	if raceDetector {
		t.Skip("under -race the test binary is cgo and TSan's runtime makes calls of its own; make test runs this without -race")
	}
	if out, code := child(t, "allowed"); code != 0 || !strings.Contains(out, "confined") {
		t.Fatalf("allowed calls: exit %d\n%s", code, out)
	}
	for _, tt := range []struct{ what, frame string }{
		{"socket", "unix.Socket"},
		{"execve", "unix.Exec"},
	} {
		out, code := child(t, tt.what)
		if code != ExitKilled || !strings.Contains(out, "SIGSYS: bad system call") || !strings.Contains(out, tt.frame) {
			t.Errorf("%s: exit %d, want %d with SIGSYS and %s in the report:\n%s", tt.what, code, ExitKilled, tt.frame, out)
		}
		if strings.Contains(out, "returned") {
			t.Errorf("%s ran", tt.what)
		}
	}
	if out, code := child(t, "log"); code != 0 || !strings.Contains(out, "logged") {
		t.Errorf("log mode: exit %d\n%s", code, out)
	}
}

// TestDropCapabilities: as root (CI), every thread of a child loses the
// capabilities it was not told to keep, and keeps those it was.
func TestDropCapabilities(t *testing.T) {
	if raceDetector {
		t.Skip("under -race the test binary is cgo and TSan's runtime makes calls of its own; make test runs this without -race")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: an unprivileged process has no capabilities to drop")
	}
	out, code := child(t, "caps")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	lines := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		lines++
		if !strings.HasSuffix(l, "\t0000000000000001") {
			t.Errorf("want only CAP_CHOWN (bit 0) left on every thread, got %q", l)
		}
	}
	if lines < 2*5 {
		t.Errorf("want the sets of at least 5 threads:\n%s", out)
	}
}
