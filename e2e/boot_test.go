package e2e

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	runnerOnce sync.Once
	runner     *Runner
	runnerErr  error
)

// testRunner returns the shared runner, or skips with the reason the host
// cannot boot Linux guests. `make test` builds the assets first, so there
// this never skips.
func testRunner(t *testing.T) *Runner {
	t.Helper()
	runnerOnce.Do(func() {
		a, err := FindAssets()
		if err != nil {
			runnerErr = err
			return
		}
		mode, err := ChooseMode()
		if err != nil {
			runnerErr = err
			return
		}
		runner = &Runner{Mode: mode, Assets: a}
	})
	if runnerErr != nil {
		if errors.Is(runnerErr, ErrNoAssets) && os.Getenv("GOVM_E2E_REQUIRED") != "" {
			t.Fatal(runnerErr)
		}
		t.Skip(runnerErr)
	}
	r := *runner
	r.Log = t.Logf
	return &r
}

// guestTimeout bounds every nested or direct boot in the tests, so a guest
// that hangs ends with govm's timeout code instead of the harness's.
const guestTimeout = "150s"

// nestedInstability is the known failure of the nested path on hosts like
// the development machines: under QEMU TCG's emulated SVM, an L2 guest
// kernel sometimes triple-faults or hangs before it reaches its init, with
// any VMM (the reference runs saw gokvm hang too). A test whose guest died
// that way in nested mode is skipped with the reason and the console, not
// passed; on hosts with VT-x/AMD-V it fails.
func nestedInstability(t *testing.T, r *Runner, res *Result) {
	t.Helper()
	if r.Mode != Nested || strings.Contains(res.Output, "GOVM-AGENT-START") {
		return
	}
	if res.GovmExit == 33 || res.GovmExit == 35 {
		t.Skipf("nested TCG instability: the L2 kernel died before its init (govm exit %d); console tail:\n%s",
			res.GovmExit, tail(res.Output, 15))
	}
}

// runCase runs c and fails the test unless govm exits with wantExit.
func runCase(t *testing.T, r *Runner, c Case, wantExit int) *Result {
	t.Helper()
	if c.Command == "" || c.Command == "run" {
		hasTimeout := false
		for _, a := range c.Args {
			hasTimeout = hasTimeout || a == "--timeout"
		}
		if !hasTimeout {
			c.Args = append(append([]string{}, c.Args...), "--timeout", guestTimeout)
		}
	}
	res, err := r.Run(context.Background(), c)
	if err != nil {
		out := ""
		if res != nil {
			out = tail(res.Output, 60)
		}
		t.Fatalf("%s run: %v\nconsole tail:\n%s", r.Mode, err, out)
	}
	if res.GovmExit != wantExit {
		nestedInstability(t, r, res)
		t.Fatalf("govm exit %d, want %d; console tail:\n%s", res.GovmExit, wantExit, tail(res.Output, 60))
	}
	return res
}

func markerInt(t *testing.T, res *Result, name string) int64 {
	t.Helper()
	v, ok := res.Marker(name)
	if !ok {
		t.Fatalf("guest did not report %s; console tail:\n%s", name, tail(res.Output, 40))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func TestBoot(t *testing.T) {
	const (
		kib = 1024
		mib = 1024 * kib
	)
	tests := []struct {
		name     string
		args     []string
		vmlinux  bool
		wantExit int
		wantCPUs int64
		// The guest's MemTotal lies between these (the kernel keeps some
		// for itself).
		minMemKB, maxMemKB int64
	}{
		{
			name:     "1 vCPU poweroff",
			args:     []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M", "--cpus", "1", "--append", "govm.action=poweroff"},
			wantExit: 0, wantCPUs: 1, minMemKB: 400 * kib, maxMemKB: 512 * kib,
		},
		{
			name:     "2 vCPUs",
			args:     []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M", "--cpus", "2", "--append", "govm.action=poweroff"},
			wantExit: 0, wantCPUs: 2, minMemKB: 400 * kib, maxMemKB: 512 * kib,
		},
		{
			name:     "4G above the PCI hole",
			args:     []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "4G", "--cpus", "1", "--append", "govm.action=poweroff"},
			wantExit: 0, wantCPUs: 1, minMemKB: 3700 * kib, maxMemKB: 4 * mib,
		},
		{
			name:     "ELF vmlinux",
			args:     []string{"--kernel", "{vmlinux}", "--initrd", "{initrd}", "--mem", "512M", "--append", "govm.action=poweroff"},
			vmlinux:  true,
			wantExit: 0, wantCPUs: 1, minMemKB: 400 * kib, maxMemKB: 512 * kib,
		},
		{
			name:     "guest reboot",
			args:     []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M", "--append", "govm.action=reboot"},
			wantExit: 32, wantCPUs: 1, minMemKB: 400 * kib, maxMemKB: 512 * kib,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRunner(t)
			res := runCase(t, r, Case{Args: tt.args, NeedVMLinux: tt.vmlinux}, tt.wantExit)
			if n := markerInt(t, res, "GOVM-CPUS"); n != tt.wantCPUs {
				t.Errorf("guest sees %d CPUs, want %d", n, tt.wantCPUs)
			}
			if kb := markerInt(t, res, "GOVM-MEMTOTAL-KB"); kb < tt.minMemKB || kb > tt.maxMemKB {
				t.Errorf("guest MemTotal %d kB, want %d-%d", kb, tt.minMemKB, tt.maxMemKB)
			}
			if strings.Contains(tt.name, "4G") && !strings.Contains(res.Output, "BIOS-e820: [mem 0x0000000100000000-0x00000001") {
				t.Errorf("no RAM above 4 GiB in the guest's e820 map")
			}
			t.Logf("%s: govm start to guest init agent: %.1f s (L1 retries: %d)", r.Mode, res.BootTime.Seconds(), res.Retries)
		})
	}
}
