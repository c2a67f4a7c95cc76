package e2e

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/govm/govm/hostinfo"
)

// Mode is how guests are run.
type Mode int

const (
	// Direct runs build/govm on this host.
	Direct Mode = iota
	// Nested runs build/govm inside a QEMU TCG L1 guest with kvm-amd.
	Nested
)

func (m Mode) String() string {
	if m == Direct {
		return "direct"
	}
	return "nested"
}

// Assets are the files scripts/assets.sh builds.
type Assets struct {
	Dir      string
	BzImage  string
	VMLinux  string
	Initrd   string
	Govm     string
	L1Base   string
	L1Kernel string
}

// ErrNoAssets means scripts/assets.sh has not been run.
var ErrNoAssets = errors.New("e2e assets missing (run 'make assets')")

// FindAssets locates build/ from $GOVM_BUILD or by walking up from the
// working directory to the module root.
func FindAssets() (*Assets, error) {
	dir := os.Getenv("GOVM_BUILD")
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return nil, ErrNoAssets
		}
		dir = filepath.Join(root, "build")
	}
	a := &Assets{
		Dir:      dir,
		BzImage:  filepath.Join(dir, "kernel/bzImage"),
		VMLinux:  filepath.Join(dir, "kernel/vmlinux"),
		Initrd:   filepath.Join(dir, "uroot.cpio"),
		Govm:     filepath.Join(dir, "govm"),
		L1Base:   filepath.Join(dir, "l1-base.cpio"),
		L1Kernel: filepath.Join(dir, "kernel/bzImage"),
	}
	for _, f := range []string{a.BzImage, a.VMLinux, a.Initrd, a.Govm, a.L1Base} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNoAssets, f)
		}
	}
	return a, nil
}

// moduleRoot is the root of this module: the first directory above the
// working directory (go test runs in the package's) with a go.mod.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s", wd)
		}
	}
}

// ChooseMode picks Direct on hosts whose KVM runs Linux natively, Nested
// where QEMU is installed, and says why neither works otherwise.
func ChooseMode() (Mode, error) {
	if os.Getenv("GOVM_E2E_MODE") == "nested" {
		return Nested, nil
	}
	f := hostinfo.Probe(hostinfo.DefaultPaths)
	if f.CanBootLinux() {
		if _, err := os.Stat("/dev/kvm"); err == nil {
			return Direct, nil
		}
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return 0, fmt.Errorf("this host cannot boot Linux under its own KVM (hardware virt %v, kvm_pvm %v) and qemu-system-x86_64 is not installed for the nested path", f.HardwareVirt(), f.PVM)
	}
	return Nested, nil
}

// Guest paths of the assets, in direct mode the host's and in nested mode
// where scripts/assets.sh put them inside L1.
const (
	l1BzImage = "/l2/bzImage"
	l1Initrd  = "/l2/initramfs.cpio"
	l1VMLinux = "/l2/vmlinux"
)

// Expand fills {bzImage}, {vmlinux} and {initrd} in args with where the
// assets are for govm in mode: here, or inside L1.
func (a *Assets) Expand(mode Mode, args []string) []string {
	var r Runner
	if mode == Nested {
		return r.expand(args, l1BzImage, l1VMLinux, l1Initrd)
	}
	return r.expand(args, a.BzImage, a.VMLinux, a.Initrd)
}
