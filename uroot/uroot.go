// Package uroot builds u-root initramfs images around Go commands, for
// `govm run --uroot` and `govm initramfs`. It owns the build (u-root's
// mkuimage Go API, run by the builder in uroot/mkimage, which it compiles
// and caches: u-root's init plus the given main packages, compiled into
// one busybox-style binary, the first package linked as uinit) and a
// content-addressed cache of the results, so that booting the same sources
// twice builds once.
//
// Building needs a Go toolchain (the go command on PATH); without one,
// Build returns ErrNoToolchain. u-root's own sources come from the Go
// module cache (fetched through the module proxy when missing), at the
// version govm was built with.
package uroot

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// UrootModule is the module whose init the images boot.
const UrootModule = "github.com/u-root/u-root"

// UrootVersion is the u-root release whose init the images boot (the
// same as scripts/assets.sh's UROOT_VERSION, which a test checks).
const UrootVersion = "v0.16.0"

// newKeyHash starts a cache key: FNV-1a, 128 bits. The key names a
// build of the user's own sources in the user's own cache, so it needs
// no resistance to chosen collisions, and crypto/sha256 would link Go's
// FIPS module into govm: code and a large zeroed array that, under
// transparent huge pages set to "always", the kernel backs with a huge
// page, raising every VM's resident memory.
func newKeyHash() hash.Hash { return fnv.New128a() }

// keyFormat changes whenever what goes into an image changes in a way the
// inputs below do not capture (a different init, other base files).
const keyFormat = "govm-uroot-2"

// Target platform: govm boots x86-64 Linux guests only.
const (
	targetOS   = "linux"
	targetArch = "amd64"
)

// ErrNoToolchain says there is no go command to build with.
var ErrNoToolchain = errors.New("building a u-root initramfs needs a Go toolchain, and no go command is on PATH (install Go, or build the image elsewhere with govm initramfs and boot it with --initrd)")

// Options says what to build.
type Options struct {
	// Packages are the main packages to include: import paths or
	// directories (./cmd/x), resolved in Dir. The first becomes uinit,
	// the program u-root's init runs once the system is up.
	Packages []string
	// Dir is where packages are resolved (a directory in the module that
	// holds them). Empty means the current directory.
	Dir string
	// CacheDir holds built images. Empty means DefaultCacheDir().
	CacheDir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Result is a built (or cached) image.
type Result struct {
	Path   string // the cpio archive, inside the cache
	Key    string // hex FNV-1a (128 bits) of everything the image is built from
	Cached bool   // true if no build was needed
	Uinit  string // the command u-root's init runs
}

// DefaultCacheDir is $XDG_CACHE_HOME/govm/initramfs (or ~/.cache/...).
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("uroot: no cache directory: %w", err)
	}
	return filepath.Join(d, "govm", "initramfs"), nil
}

// goList is the part of `go list -json` output the key needs.
type goList struct {
	ImportPath string
	Dir        string
	Name       string
	Standard   bool
	Module     *struct {
		Path    string
		Version string
		GoMod   string
		Main    bool
		Replace *struct{ Path, Version string }
	}
	GoFiles, CgoFiles, SFiles, HFiles, CFiles, EmbedFiles, SysoFiles []string
	DepOnly                                                          bool
	Error                                                            *struct{ Err string }
}

// toolchain runs the go command for the guest's platform.
type toolchain struct {
	goBin string
	dir   string
	host  bool  // for this host (the builder), not the guest
	env   goEnv // what `go env` said in dir
}

// goEnv is the part of `go env` a build needs, read once.
type goEnv struct {
	GOROOT    string
	GOVERSION string
	GOMOD     string // the go.mod of dir's module, "" or os.DevNull if none
}

// newToolchain is the go command at goBin, run in dir, with its env read.
func newToolchain(ctx context.Context, goBin, dir string) (toolchain, error) {
	tc := toolchain{goBin: goBin, dir: dir}
	out, err := tc.output(ctx, "env", "-json", "GOROOT", "GOVERSION", "GOMOD")
	if err != nil {
		return tc, fmt.Errorf("uroot: %w", err)
	}
	if err := json.Unmarshal(out, &tc.env); err != nil {
		return tc, fmt.Errorf("uroot: go env output: %w", err)
	}
	return tc, nil
}

func (t toolchain) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, t.goBin, args...)
	c.Dir = t.dir
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if t.host {
		c.Env = append(c.Env, "GOWORK=off", "GOFLAGS=")
	} else {
		c.Env = append(c.Env, "GOOS="+targetOS, "GOARCH="+targetArch)
	}
	return c
}

func (t toolchain) output(ctx context.Context, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	c := t.cmd(ctx, args...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("go %s: %s", args[0], firstLines(msg, 3))
	}
	return out, nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "; ")
}

// Build returns an image holding u-root's init and o.Packages, from the
// cache when the same inputs were built before.
func Build(ctx context.Context, o Options) (Result, error) {
	if len(o.Packages) == 0 {
		return Result{}, errors.New("uroot: no packages to build")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return Result{}, ErrNoToolchain
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return Result{}, fmt.Errorf("uroot: %w", err)
		}
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		if cacheDir, err = DefaultCacheDir(); err != nil {
			return Result{}, err
		}
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	tc, err := newToolchain(ctx, goBin, dir)
	if err != nil {
		return Result{}, err
	}
	mains, key, err := resolve(ctx, tc, o.Packages)
	if err != nil {
		return Result{}, err
	}
	res := Result{Key: key, Uinit: filepath.Base(mains[0].Dir)}
	res.Path = filepath.Join(cacheDir, key+".cpio")
	if st, err := os.Stat(res.Path); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		res.Cached = true
		fmt.Fprintf(logw, "govm: u-root initramfs %s (cached)\n", res.Path)
		return res, nil
	}

	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("uroot: cache: %w", err)
	}
	fmt.Fprintf(logw, "govm: building a u-root initramfs with %s (u-root %s)\n",
		strings.Join(o.Packages, " "), UrootVersion)
	initDir, err := urootSource(ctx, tc)
	if err != nil {
		return Result{}, err
	}
	work, cleanup, err := workspace(ctx, tc, initDir)
	if err != nil {
		return Result{}, err
	}
	defer cleanup()
	dirs := []string{filepath.Join(initDir, "cmds", "core", "init")}
	for _, p := range mains {
		dirs = append(dirs, p.Dir)
	}
	builder, err := builderBinary(ctx, tc, cacheDir, logw)
	if err != nil {
		return Result{}, err
	}
	req := buildRequest{
		Dirs: dirs, Uinit: res.Uinit, WorkDir: dir, GOROOT: tc.env.GOROOT,
		GoBin: goBin, GOOS: targetOS, GOARCH: targetArch,
	}
	if err := create(ctx, builder, work, cacheDir, res.Path, req, logw); err != nil {
		return Result{}, err
	}
	return res, nil
}

// resolve lists the packages and everything they import, checks they are
// commands, and hashes what the image is built from: the toolchain
// version, u-root's version, and for each package either its module
// version (module cache contents never change) or its files' contents.
func resolve(ctx context.Context, tc toolchain, patterns []string) ([]goList, string, error) {
	args := append([]string{"list", "-deps", "-e", "-json=ImportPath,Dir,Name,Standard,Module,GoFiles,CgoFiles,SFiles,HFiles,CFiles,EmbedFiles,SysoFiles,DepOnly,Error", "--"}, patterns...)
	out, err := tc.output(ctx, args...)
	if err != nil {
		return nil, "", fmt.Errorf("uroot: %w", err)
	}
	var pkgs []goList
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p goList
		if err := dec.Decode(&p); err != nil {
			return nil, "", fmt.Errorf("uroot: go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	h := newKeyHash()
	fmt.Fprintf(h, "%s\n%s %s/%s\nu-root %s\n", keyFormat, tc.env.GOVERSION, targetOS, targetArch, UrootVersion)
	var mains []goList
	for _, p := range pkgs {
		if p.Error != nil {
			return nil, "", fmt.Errorf("uroot: %s: %s", p.ImportPath, firstLines(p.Error.Err, 3))
		}
		if !p.DepOnly {
			if p.Name != "main" {
				return nil, "", fmt.Errorf("uroot: %s is package %s, not a command (package main)", p.ImportPath, p.Name)
			}
			mains = append(mains, p)
		}
		if err := hashPackage(h, p); err != nil {
			return nil, "", err
		}
	}
	if len(mains) == 0 {
		return nil, "", fmt.Errorf("uroot: %s matched no packages", strings.Join(patterns, " "))
	}
	return mains, hex.EncodeToString(h.Sum(nil)), nil
}

// hashPackage adds one package's identity to the key.
func hashPackage(h io.Writer, p goList) error {
	fmt.Fprintf(h, "pkg %s main=%v\n", p.ImportPath, !p.DepOnly)
	if p.Standard {
		return nil // fixed by the toolchain version
	}
	if m := p.Module; m != nil && !m.Main && m.Replace == nil && m.Version != "" {
		fmt.Fprintf(h, "mod %s@%s\n", m.Path, m.Version)
		return nil
	}
	// Sources that can change under the same name: the main module, a
	// replace directive, a GOPATH package. Hash their contents.
	if m := p.Module; m != nil && m.GoMod != "" {
		if err := hashFile(h, m.GoMod); err != nil {
			return err
		}
	}
	var files []string
	for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.SFiles, p.HFiles, p.CFiles, p.EmbedFiles, p.SysoFiles} {
		files = append(files, list...)
	}
	sort.Strings(files)
	for _, f := range files {
		if err := hashFile(h, filepath.Join(p.Dir, f)); err != nil {
			return err
		}
	}
	return nil
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("uroot: %w", err)
	}
	defer f.Close()
	fmt.Fprintf(h, "file %s\n", filepath.Base(path))
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("uroot: %s: %w", path, err)
	}
	return nil
}

// urootSource returns u-root's module directory, downloading the module
// through the Go module proxy if the cache does not have it.
func urootSource(ctx context.Context, tc toolchain) (string, error) {
	mod := UrootModule + "@" + UrootVersion
	// Outside any module, so the user's go.mod is neither read nor changed.
	tmp, err := os.MkdirTemp("", "govm-uroot-mod")
	if err != nil {
		return "", fmt.Errorf("uroot: %w", err)
	}
	defer os.RemoveAll(tmp)
	tc.dir = tmp
	out, err := tc.output(ctx, "mod", "download", "-json", mod)
	if err != nil {
		return "", fmt.Errorf("uroot: fetching %s: %w", mod, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil {
		return "", fmt.Errorf("uroot: go mod download output: %w", err)
	}
	if m.Error != "" || m.Dir == "" {
		return "", fmt.Errorf("uroot: fetching %s: %s", mod, m.Error)
	}
	return m.Dir, nil
}

// workspace writes a go.work using the module that holds the packages
// and u-root's, so one build sees both: gobusybox builds commands of
// several modules only as a workspace.
func workspace(ctx context.Context, tc toolchain, urootDir string) (string, func(), error) {
	gomod := tc.env.GOMOD
	if gomod == "" || gomod == os.DevNull {
		return "", nil, fmt.Errorf("uroot: %s is not in a Go module (no go.mod above it)", tc.dir)
	}
	tmp, err := os.MkdirTemp("", "govm-uroot-work")
	if err != nil {
		return "", nil, fmt.Errorf("uroot: %w", err)
	}
	cleanup := func() { os.RemoveAll(tmp) }
	wt := tc
	wt.dir = tmp
	if _, err := wt.output(ctx, "work", "init", filepath.Dir(gomod), urootDir); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("uroot: %w", err)
	}
	return filepath.Join(tmp, "go.work"), cleanup, nil
}

// create builds the image into out through a temporary file, so the cache
// never holds a partial archive.
func create(ctx context.Context, builder, work, cacheDir, out string, req buildRequest, logw io.Writer) error {
	tmpDir, err := os.MkdirTemp("", "govm-uroot-build")
	if err != nil {
		return fmt.Errorf("uroot: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	part, err := os.CreateTemp(cacheDir, ".partial-*.cpio")
	if err != nil {
		return fmt.Errorf("uroot: cache: %w", err)
	}
	partName := part.Name()
	part.Close()
	defer os.Remove(partName)
	req.TempDir, req.Output = tmpDir, partName
	in, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("uroot: %w", err)
	}
	// The workspace is how gobusybox builds commands from two modules
	// ("path resolution & multi-module builds" in its README).
	cmd := exec.CommandContext(ctx, builder)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Env = append(os.Environ(), "GOWORK="+work, "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("uroot: building the initramfs: %s", firstLines(strings.TrimPrefix(msg, "mkimage: "), 5))
	}
	if err := os.Rename(partName, out); err != nil {
		return fmt.Errorf("uroot: cache: %w", err)
	}
	fmt.Fprintf(logw, "govm: u-root initramfs %s\n", out)
	return nil
}

// buildRequest is the builder's input (uroot/mkimage's request).
type buildRequest struct {
	Dirs                   []string
	Uinit, Output, TempDir string
	WorkDir, GOROOT, GoBin string
	GOOS, GOARCH           string
}

// builderSource is the image builder (uroot/mkimage), which runs u-root's
// mkuimage API in a process of its own: linked into govm, mkuimage and its
// dependencies took govm's binary from 5.5 to 12.4 MB and the resident
// memory of every govm run from 4.5 to 9.1 MB, for a feature most runs do
// not use.
//
//go:embed mkimage/main.go
var builderSource []byte

// builderRequires pins the builder's modules to the versions in govm's
// own go.mod (a test checks), where they are built and tested; minimal
// versions would not do (an old x/tools does not compile with new Go).
var builderRequires = []string{
	"github.com/u-root/gobusybox/src v0.0.0-20250101170133-2e884e4509c7",
	"github.com/u-root/mkuimage v0.0.0-20250905073043-9a40452f5d3b",
	"github.com/u-root/uio v0.0.0-20240224005618-d2acac8f3701",
	"golang.org/x/sys v0.50.0",
	"github.com/hugelgupf/go-shlex v0.0.0-20200702092117-c80c9d0918fa",
	"github.com/pierrec/lz4/v4 v4.1.22",
	"golang.org/x/exp v0.0.0-20250305212735-054e65f0b394",
	"golang.org/x/mod v0.35.0",
	"golang.org/x/sync v0.20.0",
	"golang.org/x/tools v0.43.0",
	"mvdan.cc/sh/v3 v3.11.0",
}

// builderBinary returns the builder, compiled with the user's toolchain
// into the cache on first use (keyed by its source, modules and the Go
// version, so a new govm or Go builds it again).
func builderBinary(ctx context.Context, tc toolchain, cacheDir string, logw io.Writer) (string, error) {
	h := newKeyHash()
	h.Write(builderSource)
	fmt.Fprintf(h, "%s\n%s\n", strings.Join(builderRequires, "\n"), tc.env.GOVERSION)
	bin := filepath.Join(cacheDir, "mkimage-"+hex.EncodeToString(h.Sum(nil))[:16])
	if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
		return bin, nil
	}
	fmt.Fprintf(logw, "govm: building the image builder (once per govm and Go version)\n")
	src, err := os.MkdirTemp("", "govm-mkimage")
	if err != nil {
		return "", fmt.Errorf("uroot: %w", err)
	}
	defer os.RemoveAll(src)
	gomod := "module govm.local/mkimage\n\ngo 1.21\n\nrequire (\n\t" + strings.Join(builderRequires, "\n\t") + "\n)\n"
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		return "", fmt.Errorf("uroot: %w", err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), builderSource, 0o644); err != nil {
		return "", fmt.Errorf("uroot: %w", err)
	}
	bt := tc
	bt.dir = src
	bt.host = true
	// tidy fills go.sum (through the module cache or the proxy); the
	// builder runs on this host, so it is built for it.
	if _, err := bt.output(ctx, "mod", "tidy"); err != nil {
		return "", fmt.Errorf("uroot: preparing the image builder: %w", err)
	}
	part := bin + ".partial"
	defer os.Remove(part)
	if _, err := bt.output(ctx, "build", "-trimpath", "-o", part, "."); err != nil {
		return "", fmt.Errorf("uroot: building the image builder: %w", err)
	}
	if err := os.Rename(part, bin); err != nil {
		return "", fmt.Errorf("uroot: cache: %w", err)
	}
	return bin, nil
}
