package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/govm/govm/kvm/kvmtest"
)

// unitPackage is a package whose compiled tests run inside L1.
type unitPackage struct{ name, pkg string }

// kvmUnitPackages are the packages whose unit tests run tiny guests on
// /dev/kvm (and skip where it is missing).
var kvmUnitPackages = []unitPackage{
	{"kvm", "./kvm"},
	{"machine", "./machine"},
	{"govm", "./cmd/govm"},
}

// kvmSkip matches the skip messages of tests that need /dev/kvm or its
// in-kernel irqchip.
var kvmSkip = regexp.MustCompile(`no (usable )?/dev/kvm|no in-kernel irqchip`)

// runUnitInL1 compiles the packages' tests here and runs each binary
// inside L1 with flags, in a directory of its own, with govm's own binary
// for the CLI tests ($GOVM_TEST_BINARY) and cmd/govm/testdata/rawrun
// ($GOVM_TEST_RAWRUN). Each binary's output is bracketed by
// GOVM-UNIT-BEGIN name and GOVM-UNIT-RC name=CODE.
func runUnitInL1(t testing.TB, r *Runner, pkgs []unitPackage, flags string, timeout time.Duration) *Result {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// build runs `go build` (or `go test -c` for a package's tests) and
	// returns the static binary.
	build := func(out, pkg string, tests bool) []byte {
		bin := filepath.Join(dir, out)
		args := []string{"build"}
		if tests {
			args = []string{"test", "-c"}
		}
		cmd := exec.Command("go", append(args, "-trimpath", "-o", bin, pkg)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	files := map[string][]byte{"rawrun": build("rawrun", "./cmd/govm/testdata/rawrun", false)}
	var script strings.Builder
	script.WriteString("set -u\ntop=$(cd \"$(dirname \"$0\")\" && pwd)\nchmod +x $top/rawrun\n")
	script.WriteString("export GOVM_TEST_BINARY=$(command -v govm) GOVM_TEST_RAWRUN=$top/rawrun\n")
	for _, p := range pkgs {
		files[p.name+".test"] = build(p.name+".test", p.pkg, true)
		// Each in a directory of its own, as go test runs a package's
		// tests in the package's directory.
		fmt.Fprintf(&script, "mkdir -p $top/%[1]s.d && cd $top/%[1]s.d && chmod +x ../%[1]s.test\n", p.name)
		fmt.Fprintf(&script, "echo GOVM-UNIT-BEGIN %s\n", p.name)
		fmt.Fprintf(&script, "../%[1]s.test %[2]s 2>&1; echo GOVM-UNIT-RC %[1]s=$?\n", p.name, flags)
	}
	files["run.sh"] = []byte(script.String())
	c := Case{Program: "sh", Args: []string{"{dir}/run.sh"}, Files: files, Timeout: timeout}
	if tt, ok := t.(*testing.T); ok {
		return runCase(tt, r, c, 0)
	}
	res, err := r.Run(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// unitSection is the output of one package's binary, and its exit code
// ("" if it did not finish).
func unitSection(out, name string) (string, string) {
	_, after, ok := strings.Cut(out, "GOVM-UNIT-BEGIN "+name+"\n")
	if !ok {
		return "", ""
	}
	section, rest, ok := strings.Cut(after, "GOVM-UNIT-RC "+name+"=")
	if !ok {
		return section, ""
	}
	code, _, _ := strings.Cut(rest, "\n")
	return section, strings.TrimSpace(code)
}

// TestKVMUnitTests runs the unit tests that need /dev/kvm inside L1, on
// its kvm-amd, when the host is run nested: a host without a /dev/kvm of
// its own (the CI machines may have none) skips them as unit tests, and
// make test must still run them. A test that skips there for want of KVM
// fails this one.
func TestKVMUnitTests(t *testing.T) {
	r := testRunner(t)
	if r.Mode != Nested {
		t.Skip("direct mode: these tests run as unit tests on this host's /dev/kvm")
	}
	res := runUnitInL1(t, r, kvmUnitPackages, "-test.v -test.count=1 -test.timeout=4m", 8*time.Minute)
	for _, p := range kvmUnitPackages {
		section, code := unitSection(res.Output, p.name)
		switch code {
		case "":
			t.Errorf("%s: the test binary did not finish in L1", p.pkg)
		case "0":
		default:
			t.Errorf("%s: tests failed in L1 (exit %s)", p.pkg, code)
		}
		var skips []string
		for _, l := range strings.Split(section, "\n") {
			if _, name, ok := strings.Cut(l, "--- SKIP: "); ok {
				skips = append(skips, strings.Fields(name)[0])
			}
		}
		if m := kvmSkip.FindString(section); m != "" {
			t.Errorf("%s: a test skipped in L1 for want of KVM (%q)", p.pkg, m)
		}
		passed := strings.Count(section, "--- PASS: ")
		t.Logf("%s in L1: %d passed, %d skipped %v", p.pkg, passed, len(skips), skips)
		if passed == 0 {
			t.Errorf("%s: no test passed in L1", p.pkg)
		}
	}
	if t.Failed() {
		t.Logf("console tail:\n%s", tail(res.Output, 120))
	}
}

// kvmBenchCount is how many times BenchmarkKVMUnitBenches runs each
// benchmark in L1 (make bench's BENCHCOUNT, 5 by default).
func kvmBenchCount() string {
	if v := os.Getenv("BENCHCOUNT"); v != "" {
		return v
	}
	return "5"
}

// BenchmarkKVMUnitBenches runs the benchmarks that need /dev/kvm (the exit
// round trip against the raw KVM_RUN loop, and start-up against rawrun)
// inside L1 when this host has no /dev/kvm of its own, and prints their
// result lines for internal/benchtable. Where the host has one they run as
// unit benchmarks there instead, and this one skips, so no figure is
// counted twice.
func BenchmarkKVMUnitBenches(b *testing.B) {
	r := testRunner(b)
	if err := kvmtest.Available(); err == nil || r.Mode != Nested {
		b.Skip("this host's /dev/kvm runs them as unit benchmarks")
	}
	pkgs := []unitPackage{{"machine", "./machine"}, {"govm", "./cmd/govm"}}
	flags := "-test.run '^$' -test.bench '^(BenchmarkExitRoundTrip|BenchmarkStartup)$' -test.benchmem -test.count " + kvmBenchCount()
	for range b.N {
		res := runUnitInL1(b, r, pkgs, flags, 20*time.Minute)
		for _, p := range pkgs {
			section, code := unitSection(res.Output, p.name)
			if code != "0" {
				b.Fatalf("%s: benchmarks failed in L1 (exit %q):\n%s", p.pkg, code, tail(section, 40))
			}
			n := 0
			for _, l := range strings.Split(section, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "Benchmark") && strings.Contains(l, "ns/op") {
					fmt.Println(strings.TrimSpace(l))
					n++
				}
			}
			if n == 0 {
				b.Fatalf("%s: no benchmark results from L1:\n%s", p.pkg, tail(section, 40))
			}
		}
	}
}
