package uroot

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// module writes a throwaway module: a command that imports a local
// package.
func module(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":            "module example.com/m\n\ngo 1.21\n",
		"cmd/hello/main.go": "package main\n\nimport \"example.com/m/lib\"\n\nfunc main() { println(lib.Greeting) }\n",
		"lib/lib.go":        "package lib\n\nconst Greeting = \"hello\"\n",
		"lib/notes.txt":     "not a source file\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func goToolchain(t *testing.T, dir string) toolchain {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	t.Setenv("GOWORK", "off")
	t.Setenv("GOFLAGS", "")
	tc, err := newToolchain(context.Background(), goBin, dir)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// TestKeyFollowsSources: the cache key is stable for unchanged inputs and
// changes with any source the image is built from, the command's own or a
// package it imports, but not with files the build does not read.
func TestKeyFollowsSources(t *testing.T) {
	dir := module(t)
	tc := goToolchain(t, dir)
	ctx := context.Background()
	key := func() string {
		t.Helper()
		mains, k, err := resolve(ctx, tc, []string{"./cmd/hello"})
		if err != nil {
			t.Fatal(err)
		}
		if len(mains) != 1 || filepath.Base(mains[0].Dir) != "hello" {
			t.Fatalf("mains %+v, want cmd/hello", mains)
		}
		return k
	}
	edit := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k0 := key()
	if k := key(); k != k0 {
		t.Fatalf("key changed without a change: %s then %s", k0, k)
	}
	edit("lib/notes.txt", "still not a source file\n")
	if k := key(); k != k0 {
		t.Fatal("key changed with a file the build does not read")
	}
	seen := map[string]string{k0: "original"}
	for _, c := range []struct{ name, file, data string }{
		{"command source", "cmd/hello/main.go", "package main\n\nimport \"example.com/m/lib\"\n\nfunc main() { println(lib.Greeting, 2) }\n"},
		{"imported package", "lib/lib.go", "package lib\n\nconst Greeting = \"hi\"\n"},
		{"new file in an imported package", "lib/more.go", "package lib\n\nconst More = 1\n"},
		{"go.mod", "go.mod", "module example.com/m\n\ngo 1.22\n"},
	} {
		edit(c.file, c.data)
		k := key()
		if prev, ok := seen[k]; ok {
			t.Fatalf("%s: key %s is the same as after %s", c.name, k, prev)
		}
		seen[k] = c.name
	}
}

func TestResolveErrors(t *testing.T) {
	dir := module(t)
	tc := goToolchain(t, dir)
	for _, c := range []struct {
		name string
		pkgs []string
		want string
	}{
		{"library, not a command", []string{"./lib"}, "not a command"},
		{"missing directory", []string{"./nope"}, "nope"},
		{"unknown import path", []string{"example.com/m/cmd/absent"}, "absent"},
		{"no match", []string{"./cmd/hello/..."}, ""}, // matches hello: no error
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := resolve(context.Background(), tc, c.pkgs)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func TestBuildNeedsToolchain(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := Build(context.Background(), Options{Packages: []string{"./cmd/hello"}, Dir: module(t), CacheDir: t.TempDir()})
	if !errors.Is(err, ErrNoToolchain) {
		t.Fatalf("error %v, want ErrNoToolchain", err)
	}
}

// TestCacheHit: an image already in the cache under the sources' key is
// returned without building (no u-root source, no compiler needed).
func TestCacheHit(t *testing.T) {
	dir := module(t)
	tc := goToolchain(t, dir)
	_, key, err := resolve(context.Background(), tc, []string{"./cmd/hello"})
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	img := filepath.Join(cache, key+".cpio")
	if err := os.WriteFile(img, []byte("070701 an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), Options{Packages: []string{"./cmd/hello"}, Dir: dir, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cached || res.Path != img || res.Uinit != "hello" {
		t.Fatalf("result %+v, want the cached %s with uinit hello", res, img)
	}
}

// TestUrootVersionMatchesAssets: the demo and test initramfs
// (scripts/assets.sh) and --uroot images boot the same u-root.
func TestUrootVersionMatchesAssets(t *testing.T) {
	b, err := os.ReadFile("../scripts/assets.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "UROOT_VERSION="); ok {
			if v != UrootVersion {
				t.Fatalf("scripts/assets.sh builds u-root %s, package uroot %s", v, UrootVersion)
			}
			return
		}
	}
	t.Fatal("scripts/assets.sh sets no UROOT_VERSION")
}

// TestBuild builds a real image (u-root's mkuimage, the go command, u-root
// from the module cache or the proxy) around a command of a module that
// does not depend on u-root, then finds it in the cache.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds u-root's init (about 15 s)")
	}
	dir := module(t)
	goToolchain(t, dir)
	cache := t.TempDir()
	o := Options{Packages: []string{"./cmd/hello"}, Dir: dir, CacheDir: cache}
	res, err := Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Cached || res.Uinit != "hello" {
		t.Fatalf("result %+v, want a fresh build with uinit hello", res)
	}
	data, err := os.ReadFile(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bbin/bb", "bbin/init", "bbin/hello", "bin/uinit", "../bbin/hello"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("image lacks %q", want)
		}
	}
	again, err := Build(context.Background(), o)
	if err != nil || !again.Cached || again.Path != res.Path {
		t.Fatalf("second build: %+v, %v; want the cached %s", again, err, res.Path)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, ".partial-*")); len(left) != 0 {
		t.Errorf("partial files left in the cache: %v", left)
	}
}

// TestBuilderRequiresMatchGoMod: the builder is built with the module
// versions govm's own go.mod tests it with.
func TestBuilderRequiresMatchGoMod(t *testing.T) {
	b, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range builderRequires {
		if !strings.Contains(string(b), "\t"+r+"\n") && !strings.Contains(string(b), "\t"+r+" //") {
			t.Errorf("go.mod does not require %s", r)
		}
	}
}
