package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestUroot: govm initramfs builds a u-root image around a Go command on
// this host (u-root's mkuimage, a real go build), an unchanged second
// build is a cache hit, and govm run --uroot boots the command as uinit:
// govm-exit ends the VM with the code on the kernel command line, and
// govm exits with it. In direct mode the run builds the image itself
// (from an empty cache). In nested mode L1 has the go command and the
// sources but no compiler (see goTree): it computes the same content key
// from the sources and boots the image the host's build put in the cache.
func TestUroot(t *testing.T) {
	r := testRunner(t)
	const pkg = "./guest/cmd/govm-exit"
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	out := filepath.Join(t.TempDir(), "exit.cpio")
	build := func() string {
		t.Helper()
		cmd := exec.Command(r.Assets.Govm, "initramfs", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("govm initramfs: %v\n%s", err, b)
		}
		return string(b)
	}
	if first := build(); !strings.Contains(first, "building a u-root initramfs") {
		t.Fatalf("first build did not build:\n%s", first)
	}
	if second := build(); !strings.Contains(second, "(cached)") {
		t.Fatalf("second build of the same sources was not a cache hit:\n%s", second)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	names, err := cpioNames(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bbin/bb", "bbin/init -> bb", "bbin/govm-exit -> bb", "init -> bbin/init", "bin/uinit -> ../bbin/govm-exit"} {
		if !slices.Contains(names, want) {
			t.Fatalf("image lacks %q; it holds %q", want, names)
		}
	}

	c := Case{
		Args:       []string{"--kernel", "{bzImage}", "--uroot", pkg, "--append", "uroot.uinitargs=7", "--mem", "256M"},
		GoPackages: []string{pkg},
		Env:        []string{"XDG_CACHE_HOME={dir}/cache"},
	}
	if r.Mode == Nested {
		cached, err := filepath.Glob(filepath.Join(cache, "govm", "initramfs", "*.cpio"))
		if err != nil || len(cached) != 1 {
			t.Fatalf("cache holds %q (%v), want one image", cached, err)
		}
		c.Files = map[string][]byte{"cache/govm/initramfs/" + filepath.Base(cached[0]): data}
	}
	res := runCase(t, r, c, 7)
	var said []string
	for _, l := range strings.Split(res.Output, "\n") {
		if strings.HasPrefix(l, "govm") {
			said = append(said, l)
		}
	}
	t.Logf("%s run: %s", r.Mode, strings.Join(said, " | "))
	if !strings.Contains(res.Output, "govm-exit: 7") {
		t.Fatalf("the guest command did not run; console tail:\n%s", tail(res.Output, 40))
	}
	want := "building a u-root initramfs"
	if r.Mode == Nested {
		want = "(cached)"
	}
	if !strings.Contains(res.Output, want) {
		t.Fatalf("govm run --uroot did not say %q; console tail:\n%s", want, tail(res.Output, 40))
	}
}
