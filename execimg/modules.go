// Package execimg builds the initramfs `govm exec` boots: govm's own
// executable as /init (with its dynamic loader and libraries, if it has
// any), and the kernel modules the guest needs to reach its command,
// resolved with their dependencies from the kernel's modules.dep. Images
// are cached by content. The archive is written with u-root's pkg/cpio;
// compressed modules are unpacked here with ulikunitz/xz and
// klauspost/compress, so the guest kernel need not decompress them.
package execimg

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Needed are the modules the guest of govm exec needs, in the order they
// are loaded (each after its dependencies): virtio-PCI, the console for
// the command's streams, virtio-fs for the host's files, and overlayfs
// so the command may write anywhere without touching the host.
var Needed = []string{"virtio_pci", "virtio_console", "virtiofs", "overlay"}

// NeededNet are loaded after Needed when the VM has NICs.
var NeededNet = []string{"virtio_net"}

// ErrModule is returned when a needed module is neither built into the
// kernel nor found in its modules directory.
var ErrModule = errors.New("kernel module not found")

// Module is a module file to load.
type Module struct {
	Name string // as modprobe knows it: virtio_pci
	Path string // the file on the host
}

// moduleName is the name of a module file: its base name without the
// .ko and compression suffixes, dashes as underscores (as the kernel
// names modules).
func moduleName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// Resolve finds the modules in dir (a /lib/modules/RELEASE directory)
// that loading names needs, each after its dependencies, leaving out
// those built into the kernel (modules.builtin).
func Resolve(dir string, names []string) ([]Module, error) {
	deps, err := readDep(filepath.Join(dir, "modules.dep"))
	if errors.Is(err, os.ErrNotExist) {
		// An unpacked kernel package: depmod never ran. Read each
		// module's own list of dependencies, as depmod would.
		deps, err = scanModinfo(dir)
	}
	if err != nil {
		return nil, err
	}
	builtin, err := readBuiltin(filepath.Join(dir, "modules.builtin"))
	if err != nil {
		return nil, err
	}
	var out []Module
	seen := map[string]bool{}
	var add func(name string, chain []string) error
	add = func(name string, chain []string) error {
		if seen[name] || builtin[name] {
			return nil
		}
		if len(chain) > 64 {
			return fmt.Errorf("modules.dep: dependency loop at %s", strings.Join(chain, " -> "))
		}
		e, ok := deps[name]
		if !ok {
			return fmt.Errorf("%w: %s (looked in %s/modules.dep and modules.builtin)", ErrModule, name, dir)
		}
		// modules.dep lists dependencies so that the last is loaded first.
		for i := len(e.deps) - 1; i >= 0; i-- {
			if err := add(e.deps[i], append(chain, name)); err != nil {
				return err
			}
		}
		seen[name] = true
		out = append(out, Module{Name: name, Path: filepath.Join(dir, e.path)})
		return nil
	}
	for _, n := range names {
		if err := add(strings.ReplaceAll(n, "-", "_"), nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type depEntry struct {
	path string
	deps []string // module names
}

// readDep parses modules.dep: "path: dep-path dep-path ...".
func readDep(file string) (map[string]depEntry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]depEntry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		path, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		e := depEntry{path: strings.TrimSpace(path)}
		for _, d := range strings.Fields(rest) {
			e.deps = append(e.deps, moduleName(d))
		}
		m[moduleName(e.path)] = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return m, nil
}

// readBuiltin parses modules.builtin (one path per line); a missing file
// means nothing is known to be built in.
func readBuiltin(file string) (map[string]bool, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, l := range strings.Fields(string(b)) {
		m[moduleName(l)] = true
	}
	return m, nil
}

// scanModinfo builds the dependency map from the modules under dir: the
// "depends=" entry of each one's .modinfo section names what it needs.
func scanModinfo(dir string) (map[string]depEntry, error) {
	m := map[string]depEntry{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.Contains(d.Name(), ".ko") {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		m[moduleName(path)] = depEntry{path: rel}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: no modules.dep, and %w", dir, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%s: no modules.dep and no modules", dir)
	}
	for name, e := range m {
		deps, err := modinfoDepends(filepath.Join(dir, e.path))
		if err != nil {
			return nil, err
		}
		// Listed so that the last is loaded first, as in modules.dep.
		for i := len(deps) - 1; i >= 0; i-- {
			e.deps = append(e.deps, deps[i])
		}
		m[name] = e
	}
	return m, nil
}

// modinfoDepends reads a module's "depends=" list.
func modinfoDepends(path string) ([]string, error) {
	b, err := readModule(path)
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, nil
	}
	info, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for kv := range bytes.SplitSeq(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			var out []string
			for d := range strings.SplitSeq(string(v), ",") {
				if d != "" {
					out = append(out, strings.ReplaceAll(d, "-", "_"))
				}
			}
			return out, nil
		}
	}
	return nil, nil
}
