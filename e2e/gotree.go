package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// goTree is what `go env` and `go list` need to resolve some packages of
// this module inside L1, where there is no Go installation: the go
// command, the sources of every package the given ones import (the
// standard library's, the module's own, the module cache's) and the
// module cache's metadata. It holds no compiler: L1 can compute what
// `govm run --uroot` would build, not build it. Every file keeps its host
// path under goTreeRoot (not at it: L1 mounts a tmpfs on /tmp, where a
// checkout may live), which the cache key does not see (it hashes module
// versions and file contents, not paths).
type goTree struct {
	Files    []cpioFile
	ModRoot  string   // the module's root directory in L1
	Env      []string // go's environment in L1
	GoBinDir string
}

// goTreeRoot is where L1 gets the host's files.
const goTreeRoot = "/gotree"

// goListPkg is the part of `go list -json` goTree uses.
type goListPkg struct {
	Dir      string
	Standard bool
	Module   *struct{ Dir, GoMod string }
}

// buildGoTree collects the files for pkgs (patterns resolved in the module
// at modRoot) from the host's Go installation.
func buildGoTree(modRoot string, pkgs ...string) (*goTree, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("go tree: %w", err)
	}
	env, err := goOutput(modRoot, goBin, "env", "-json", "GOROOT", "GOMODCACHE")
	if err != nil {
		return nil, err
	}
	var ge struct{ GOROOT, GOMODCACHE string }
	if err := json.Unmarshal(env, &ge); err != nil {
		return nil, fmt.Errorf("go tree: go env: %w", err)
	}
	list, err := goOutput(modRoot, goBin, append([]string{"list", "-deps", "-json=Dir,Standard,Module"}, pkgs...)...)
	if err != nil {
		return nil, err
	}
	t := &goTree{ModRoot: goTreeRoot + modRoot, GoBinDir: goTreeRoot + filepath.Join(ge.GOROOT, "bin")}
	seen := map[string]bool{}
	add := func(path string, mode uint32) error {
		if seen[path] {
			return nil
		}
		seen[path] = true
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("go tree: %w", err)
		}
		t.Files = append(t.Files, cpioFile{Name: strings.TrimPrefix(goTreeRoot+path, "/"), Mode: mode, Data: data})
		return nil
	}
	// The go command and the files it reads to know its GOROOT.
	for _, f := range []string{"bin/go", "go.env", "VERSION", "src/go.mod", "src/vendor/modules.txt"} {
		mode := uint32(0o644)
		if f == "bin/go" {
			mode = 0o755
		}
		if err := add(filepath.Join(ge.GOROOT, f), mode); err != nil && f != "go.env" {
			return nil, err
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := add(filepath.Join(modRoot, f), 0o644); err != nil {
			return nil, err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(list))
	for dec.More() {
		var p goListPkg
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("go tree: go list: %w", err)
		}
		// Every non-test source in the directory: go list reads them all
		// to apply build constraints.
		entries, err := os.ReadDir(p.Dir)
		if err != nil {
			return nil, fmt.Errorf("go tree: %w", err)
		}
		for _, e := range entries {
			n := e.Name()
			if !e.Type().IsRegular() || strings.HasSuffix(n, "_test.go") {
				continue
			}
			switch filepath.Ext(n) {
			case ".go", ".s", ".h", ".c":
				if err := add(filepath.Join(p.Dir, n), 0o644); err != nil {
					return nil, err
				}
			}
		}
		if m := p.Module; m != nil && !p.Standard && m.GoMod != "" {
			if err := add(m.GoMod, 0o644); err != nil {
				return nil, err
			}
		}
	}
	// The module cache's metadata (go.mod files, checksums of extracted
	// modules) for loading the module graph; a few MB.
	dl := filepath.Join(ge.GOMODCACHE, "cache", "download")
	err = filepath.WalkDir(dl, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		switch filepath.Ext(path) {
		case ".mod", ".info", ".ziphash":
			return add(path, 0o644)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("go tree: %w", err)
	}
	t.Env = []string{
		"HOME=/tmp", "GOROOT=" + goTreeRoot + ge.GOROOT, "GOCACHE=/tmp/gocache", "GOMODCACHE=" + goTreeRoot + ge.GOMODCACHE, "GOPROXY=off",
		"GOTOOLCHAIN=local", "GOFLAGS=-mod=readonly", "GOTELEMETRY=off",
	}
	return t, nil
}

func goOutput(dir, goBin string, args ...string) ([]byte, error) {
	c := exec.Command(goBin, args...)
	c.Dir = dir
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("go tree: go %s: %v: %s", args[0], err, stderr.Bytes())
	}
	return out, nil
}
