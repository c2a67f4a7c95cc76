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
)

// kvmUnitPackages are the packages whose unit tests run tiny guests on
// /dev/kvm (and skip where it is missing).
var kvmUnitPackages = []struct{ name, pkg string }{
	{"kvm", "./kvm"},
	{"machine", "./machine"},
	{"govm", "./cmd/govm"},
}

// kvmSkip matches the skip messages of tests that need /dev/kvm or its
// in-kernel irqchip.
var kvmSkip = regexp.MustCompile(`no (usable )?/dev/kvm|no in-kernel irqchip`)

// TestKVMUnitTests runs the unit tests that need /dev/kvm inside L1, on
// its kvm-amd, when the host is run nested: a host without a /dev/kvm of
// its own (the CI machines may have none) skips them as unit tests, and
// make test must still run them. Each package's test binary is compiled
// here and run in L1 with govm's own binary for the CLI tests; a test
// that skips there for want of KVM fails this one.
func TestKVMUnitTests(t *testing.T) {
	r := testRunner(t)
	if r.Mode != Nested {
		t.Skip("direct mode: these tests run as unit tests on this host's /dev/kvm")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{}
	var script strings.Builder
	script.WriteString("set -u\ntop=$(cd \"$(dirname \"$0\")\" && pwd)\nexport GOVM_TEST_BINARY=$(command -v govm)\n")
	for _, p := range kvmUnitPackages {
		bin := filepath.Join(dir, p.name+".test")
		cmd := exec.Command("go", "test", "-c", "-trimpath", "-o", bin, p.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go test -c %s: %v\n%s", p.pkg, err, out)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		files[p.name+".test"] = data
		// Each in a directory of its own, as go test runs a package's
		// tests in the package's directory.
		fmt.Fprintf(&script, "mkdir -p $top/%[1]s.d && cd $top/%[1]s.d && chmod +x ../%[1]s.test\n", p.name)
		fmt.Fprintf(&script, "echo GOVM-UNIT-BEGIN %s\n", p.name)
		fmt.Fprintf(&script, "../%[1]s.test -test.v -test.count=1 -test.timeout=4m 2>&1; echo GOVM-UNIT-RC %[1]s=$?\n", p.name)
	}
	files["run.sh"] = []byte(script.String())
	res := runCase(t, r, Case{
		Program: "sh", Args: []string{"{dir}/run.sh"}, Files: files, Timeout: 8 * time.Minute,
	}, 0)
	out := res.Output
	for _, p := range kvmUnitPackages {
		m := regexp.MustCompile(`GOVM-UNIT-RC ` + p.name + `=(\d+)`).FindStringSubmatch(out)
		switch {
		case m == nil:
			t.Errorf("%s: the test binary did not finish in L1", p.pkg)
		case m[1] != "0":
			t.Errorf("%s: tests failed in L1 (exit %s)", p.pkg, m[1])
		}
		section := out
		if _, after, ok := strings.Cut(out, "GOVM-UNIT-BEGIN "+p.name+"\n"); ok {
			section, _, _ = strings.Cut(after, "GOVM-UNIT-RC "+p.name+"=")
		}
		passed := strings.Count(section, "--- PASS: ")
		var skips []string
		for _, l := range strings.Split(section, "\n") {
			if _, name, ok := strings.Cut(l, "--- SKIP: "); ok {
				skips = append(skips, strings.Fields(name)[0])
			}
		}
		if m := kvmSkip.FindString(section); m != "" {
			t.Errorf("%s: a test skipped in L1 for want of KVM (%q)", p.pkg, m)
		}
		t.Logf("%s in L1: %d passed, %d skipped %v", p.pkg, passed, len(skips), skips)
		if passed == 0 {
			t.Errorf("%s: no test passed in L1", p.pkg)
		}
	}
	if t.Failed() {
		t.Logf("console tail:\n%s", tail(out, 120))
	}
}
