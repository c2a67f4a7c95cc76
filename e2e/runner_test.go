package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestCIRunner checks govm's verdicts as a CI boot-test runner: the guest's
// own exit code, a kernel panic, a hang cut by --timeout, and console
// matches with --expect and --fail-on.
func TestCIRunner(t *testing.T) {
	base := []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M"}
	tests := []struct {
		name     string
		args     []string
		wantExit int
		wantOut  string // must appear in the output (console and govm's stderr)
	}{
		{"guest exits 0", []string{"--append", "govm.action=exit:0"}, 0, "exiting with 0"},
		{"guest exits 7", []string{"--append", "govm.action=exit:7"}, 7, "exiting with 7"},
		{"guest kernel panic", []string{"--append", "govm.action=panic"}, 34, "guest kernel panic"},
		{"hang hits the timeout", []string{"--append", "govm.action=hang", "--timeout", "60s"}, 35, "timeout after 1m0s"},
		{"expect matches", []string{"--append", "govm.action=hang", "--expect", "GOVM-CPUS=[0-9]+", "--timeout", "150s"}, 0, "GOVM-CPUS="},
		{"fail-on matches", []string{"--append", "govm.action=hang", "--fail-on", "GOVM-MEMTOTAL-KB", "--timeout", "150s"}, 36, "matched --fail-on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRunner(t)
			start := time.Now()
			res := runCase(t, r, Case{Args: append(append([]string{}, base...), tt.args...)}, tt.wantExit)
			if !strings.Contains(res.Output, tt.wantOut) {
				t.Fatalf("output lacks %q; tail:\n%s", tt.wantOut, tail(res.Output, 40))
			}
			t.Logf("%s: exit %d after %.1f s", r.Mode, res.GovmExit, time.Since(start).Seconds())
		})
	}
}

// TestCheckWhereLinuxBoots runs govm check where the harness boots Linux
// (inside L1, or directly on a host with VT-x/AMD-V): it must pass.
func TestCheckWhereLinuxBoots(t *testing.T) {
	r := testRunner(t)
	res := runCase(t, r, Case{Command: "check", Timeout: 2 * time.Minute}, 0)
	if !strings.Contains(res.Output, "guest kernel code") {
		t.Fatalf("govm check exit %d:\n%s", res.GovmExit, tail(res.Output, 20))
	}
}
