package execimg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"
)

// modulesDir lays out a /lib/modules/RELEASE with a modules.dep like
// Debian's: virtiofs needs fuse and virtio; virtio_pci needs three more.
func modulesDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	dep := `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/char/virtio_console.ko.xz: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/fuse/fuse.ko.zst:
kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko.zst kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/fs/loop/loop-x.ko:
`
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("modules.dep", []byte(dep))
	write("modules.builtin", []byte("kernel/fs/overlayfs/overlay.ko\n"))
	for _, m := range []string{"virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci", "virtiofs"} {
		sub := "drivers/virtio"
		if m == "virtiofs" {
			sub = "fs/fuse"
		}
		write("kernel/"+sub+"/"+m+".ko", []byte("module "+m))
	}
	var x bytes.Buffer
	xw, _ := xz.NewWriter(&x)
	xw.Write([]byte("module virtio_console"))
	xw.Close()
	write("kernel/drivers/char/virtio_console.ko.xz", x.Bytes())
	zw, _ := zstd.NewWriter(nil)
	write("kernel/fs/fuse/fuse.ko.zst", zw.EncodeAll([]byte("module fuse"), nil))
	return dir
}

func TestResolve(t *testing.T) {
	dir := modulesDir(t)
	mods, err := Resolve(dir, Needed)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range mods {
		names = append(names, m.Name)
	}
	want := []string{"virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci", "virtio_console", "fuse", "virtiofs"}
	if !slices.Equal(names, want) {
		t.Fatalf("load order %v, want %v (overlay is built in)", names, want)
	}
	if _, err := Resolve(dir, []string{"loop-x"}); err != nil {
		t.Errorf("a module named with a dash: %v", err)
	}
	if _, err := Resolve(dir, []string{"9p"}); !errors.Is(err, ErrModule) {
		t.Errorf("missing module: %v, want ErrModule", err)
	}
	if _, err := Resolve(t.TempDir(), Needed); err == nil {
		t.Error("a directory without modules.dep: no error")
	}
}

func TestBuild(t *testing.T) {
	dir := modulesDir(t)
	mods, err := Resolve(dir, Needed)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	path, err := Build(Options{Init: self, Modules: mods, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, r := range recs {
		if r.Mode&cpio.S_IFMT == cpio.S_IFREG {
			b := make([]byte, r.FileSize)
			r.ReadAt(b, 0)
			files[r.Name] = b
		}
	}
	if len(files["init"]) == 0 {
		t.Error("no /init")
	}
	if got := string(files["govm/ko/04-virtio_console.ko"]); got != "module virtio_console" {
		t.Errorf("xz module unpacked to %q", got)
	}
	if got := string(files["govm/ko/05-fuse.ko"]); got != "module fuse" {
		t.Errorf("zstd module unpacked to %q", got)
	}
	list := string(files["govm/modules"])
	if !bytes.HasPrefix([]byte(list), []byte("/govm/ko/00-virtio.ko\n")) || !bytes.HasSuffix([]byte(list), []byte("/govm/ko/06-virtiofs.ko\n")) {
		t.Errorf("module list:\n%s", list)
	}
	// The same inputs reuse the image; changed ones make another.
	again, err := Build(Options{Init: self, Modules: mods, CacheDir: cache})
	if err != nil || again != path {
		t.Errorf("rebuild: %s %v, want the cached %s", again, err, path)
	}
	other, err := Build(Options{Init: self, Modules: mods[:3], CacheDir: cache})
	if err != nil || other == path {
		t.Errorf("different modules: %s %v", other, err)
	}
	ents, _ := os.ReadDir(cache)
	if len(ents) != 2 {
		t.Errorf("cache holds %d files, want 2 (no temporary left)", len(ents))
	}
}
