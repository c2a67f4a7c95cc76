package execimg

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"

	"github.com/govm/govm/guest/execinit"
)

// imageFormat changes whenever the layout of the image changes, so old
// cache entries are not reused.
const imageFormat = "govm-exec-initramfs-1"

// moduleDir is where the image keeps its modules.
const moduleDir = "govm/ko"

// Options say what goes into an image.
type Options struct {
	// Init is the executable to run as /init (govm's own).
	Init string
	// Modules are loaded by the init in this order.
	Modules []Module
	// CacheDir keeps built images; DefaultCacheDir if empty.
	CacheDir string
}

// DefaultCacheDir is $XDG_CACHE_HOME/govm/exec (or ~/.cache/govm/exec).
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w", err)
	}
	return filepath.Join(d, "govm", "exec"), nil
}

// file is one file of the image.
type file struct {
	name string // path in the image, without a leading slash
	mode uint64
	data []byte
}

// Build returns the path of the image for o, building it unless the
// cache has it.
func Build(o Options) (string, error) {
	files, err := collect(o)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	io.WriteString(h, imageFormat)
	for _, f := range files {
		fmt.Fprintf(h, "\x00%s\x00%o\x00%d\x00", f.name, f.mode, len(f.data))
		h.Write(f.data)
	}
	dir := o.CacheDir
	if dir == "" {
		if dir, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	path := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))[:32]+".cpio")
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".build-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := writeCpio(tmp, files); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// collect reads every file of the image.
func collect(o Options) ([]file, error) {
	self, err := os.ReadFile(o.Init)
	if err != nil {
		return nil, err
	}
	files := []file{{name: "init", mode: 0o755, data: self}}
	libs, err := sharedLibraries(o.Init)
	if err != nil {
		return nil, err
	}
	for _, l := range libs {
		b, err := os.ReadFile(l)
		if err != nil {
			return nil, err
		}
		files = append(files, file{name: strings.TrimPrefix(l, "/"), mode: 0o755, data: b})
	}
	var list strings.Builder
	for i, m := range o.Modules {
		b, err := readModule(m.Path)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("%s/%02d-%s.ko", moduleDir, i, m.Name)
		files = append(files, file{name: name, mode: 0o644, data: b})
		fmt.Fprintf(&list, "/%s\n", name)
	}
	files = append(files, file{name: strings.TrimPrefix(execinit.ModulesList, "/"), mode: 0o644, data: []byte(list.String())})
	return files, nil
}

// readModule reads a module file, decompressing .ko.xz, .ko.zst and
// .ko.gz.
func readModule(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	switch {
	case strings.HasSuffix(path, ".ko"):
		return b, nil
	case strings.HasSuffix(path, ".xz"):
		r, err = xz.NewReader(bytes.NewReader(b))
	case strings.HasSuffix(path, ".zst"):
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(b))
		if err == nil {
			defer d.Close()
			r = d
		}
	case strings.HasSuffix(path, ".gz"):
		r, err = gzip.NewReader(bytes.NewReader(b))
	default:
		return nil, fmt.Errorf("%s: not a kernel module (.ko, .ko.xz, .ko.zst, .ko.gz)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// libDirs are where a dynamically linked govm's libraries are looked for.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// sharedLibraries lists the loader and libraries a dynamically linked
// executable needs (none for a static one), with the libraries' own.
func sharedLibraries(exe string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	var walk func(path string, depth int) error
	walk = func(path string, depth int) error {
		f, err := elf.Open(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return err
			}
			interp := strings.TrimRight(string(b), "\x00")
			if !seen[interp] {
				seen[interp] = true
				out = append(out, interp)
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil || depth > 4 {
			return nil
		}
		for _, l := range libs {
			if seen[l] {
				continue
			}
			seen[l] = true
			found := ""
			for _, d := range libDirs {
				if _, err := os.Stat(filepath.Join(d, l)); err == nil {
					found = filepath.Join(d, l)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, not found in %s", exe, l, strings.Join(libDirs, ":"))
			}
			out = append(out, found)
			if err := walk(found, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(exe, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// writeCpio writes files as a newc archive, with their directories.
func writeCpio(w io.Writer, files []file) error {
	recs := make([]cpio.Record, 0, len(files))
	for _, f := range files {
		recs = append(recs, cpio.StaticRecord(f.data, cpio.Info{Name: f.name, Mode: cpio.S_IFREG | f.mode}))
	}
	rw := cpio.NewDedupWriter(cpio.Newc.Writer(w))
	if err := cpio.WriteRecordsAndDirs(rw, recs); err != nil {
		return fmt.Errorf("cpio: %w", err)
	}
	return cpio.WriteTrailer(rw)
}
