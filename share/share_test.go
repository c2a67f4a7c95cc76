package share

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/govm/govm/share/fusetest"
)

// rig is a share over a temporary directory with a sibling directory,
// outside, that no request may reach.
type rig struct {
	t       *testing.T
	s       *Share
	dir     string
	outside string
	unique  uint64
}

func newRig(t *testing.T, readOnly bool) *rig {
	t.Helper()
	base := t.TempDir()
	r := &rig{t: t, dir: filepath.Join(base, "shared"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{r.dir, r.outside, filepath.Join(r.dir, "sub")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(r.dir, "file"), "inside\n")
	write(filepath.Join(r.outside, "secret"), "outside\n")
	if err := os.Symlink(r.outside, filepath.Join(r.dir, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside/secret", filepath.Join(r.dir, "rel")); err != nil {
		t.Fatal(err)
	}
	s, err := New(r.dir, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	if rep := r.do(fusetest.Init(0), 1024); rep.Errno != 0 {
		t.Fatalf("INIT: errno %d", rep.Errno)
	}
	return r
}

// do serves one request with a reply area of outLen bytes.
func (r *rig) do(req []byte, outLen int) fusetest.Reply {
	r.t.Helper()
	out := make([]byte, outLen)
	n, err := r.s.Serve([][]byte{req}, [][]byte{out})
	if err != nil {
		r.t.Fatalf("Serve: %v", err)
	}
	rep, err := fusetest.Decode(out[:n])
	if err != nil {
		r.t.Fatal(err)
	}
	return rep
}

func (r *rig) req(op uint32, node uint64, in any, names ...string) fusetest.Reply {
	r.unique++
	return r.do(fusetest.Request(op, r.unique, node, in, names, nil), 4096)
}

func (r *rig) lookup(parent uint64, name string) (uint64, int32) {
	rep := r.req(fusetest.OpLookup, parent, nil, name)
	return rep.Entry().NodeId, rep.Errno
}

func (r *rig) mustLookup(parent uint64, name string) uint64 {
	r.t.Helper()
	id, e := r.lookup(parent, name)
	if e != 0 || id == 0 {
		r.t.Fatalf("LOOKUP %s: errno %d", name, e)
	}
	return id
}

// checkOutside fails if anything outside the share changed.
func (r *rig) checkOutside() {
	r.t.Helper()
	ents, err := os.ReadDir(r.outside)
	if err != nil || len(ents) != 1 {
		r.t.Fatalf("outside directory now holds %v (%v)", ents, err)
	}
	st, err := os.Stat(filepath.Join(r.outside, "secret"))
	if err != nil || st.Mode().Perm() != 0o644 || st.Size() != int64(len("outside\n")) {
		r.t.Fatalf("outside file changed: %v %v", st, err)
	}
}

const errno = -1 // want any error

func TestConfinement(t *testing.T) {
	r := newRig(t, false)
	abs := r.mustLookup(fusetest.RootID, "abs")
	rel := r.mustLookup(fusetest.RootID, "rel")
	file := r.mustLookup(fusetest.RootID, "file")
	sub := r.mustLookup(fusetest.RootID, "sub")
	chmod := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_MODE, Mode: 0o777}}
	trunc := &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_SIZE}}
	for _, c := range []struct {
		name  string
		op    uint32
		node  uint64
		in    any
		names []string
		want  int32
	}{
		{"lookup dot-dot path", fusetest.OpLookup, fusetest.RootID, nil, []string{"../outside"}, -int32(syscall.EINVAL)},
		{"lookup slash", fusetest.OpLookup, fusetest.RootID, nil, []string{"sub/../../outside"}, -int32(syscall.EINVAL)},
		{"lookup under absolute symlink", fusetest.OpLookup, abs, nil, []string{"secret"}, -int32(syscall.ENOTDIR)},
		{"lookup under a file", fusetest.OpLookup, file, nil, []string{"x"}, -int32(syscall.ENOTDIR)},
		{"mkdir under symlink", fusetest.OpMkdir, abs, &fuse.MkdirIn{Mode: 0o755}, []string{"new"}, -int32(syscall.ENOTDIR)},
		{"create under symlink", fusetest.OpCreate, abs, &fuse.CreateIn{Flags: syscall.O_WRONLY, Mode: 0o644}, []string{"new"}, -int32(syscall.ENOTDIR)},
		{"mkdir dot-dot", fusetest.OpMkdir, sub, &fuse.MkdirIn{Mode: 0o755}, []string{".."}, -int32(syscall.EINVAL)},
		{"chmod through symlink", fusetest.OpSetattr, rel, chmod, nil, -int32(syscall.EOPNOTSUPP)},
		{"truncate through symlink", fusetest.OpSetattr, rel, trunc, nil, -int32(syscall.EOPNOTSUPP)},
		{"open symlink", fusetest.OpOpen, rel, &fuse.OpenIn{Flags: syscall.O_RDWR}, nil, -int32(syscall.EACCES)},
		{"opendir symlink", fusetest.OpOpendir, abs, &fuse.OpenIn{}, nil, -int32(syscall.ENOTDIR)},
		{"rename into symlink", fusetest.OpRename, fusetest.RootID, &fusetest.RenameIn{Newdir: abs}, []string{"file", "stolen"}, -int32(syscall.ENOTDIR)},
		{"rename to dot-dot", fusetest.OpRename, fusetest.RootID, &fusetest.RenameIn{Newdir: sub}, []string{"file", ".."}, -int32(syscall.EINVAL)},
		{"link into symlink", fusetest.OpLink, abs, &fuse.LinkIn{Oldnodeid: file}, []string{"x"}, -int32(syscall.ENOTDIR)},
		{"mknod char device", fusetest.OpMknod, fusetest.RootID, &fuse.MknodIn{Mode: syscall.S_IFCHR | 0o666, Rdev: 1<<8 | 3}, []string{"null"}, -int32(syscall.EPERM)},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.t = t
			rep := r.req(c.op, c.node, c.in, c.names...)
			if c.want == errno && rep.Errno >= 0 || c.want != errno && rep.Errno != c.want {
				t.Errorf("errno %d, want %d", rep.Errno, c.want)
			}
			r.checkOutside()
		})
	}
	r.t = t

	// A symlink the guest makes is a symlink on the host, never a parent.
	rep := r.req(fusetest.OpSymlink, fusetest.RootID, nil, "made", r.outside)
	if rep.Errno != 0 {
		t.Fatalf("SYMLINK: errno %d", rep.Errno)
	}
	made := rep.Entry().NodeId
	if rep := r.req(fusetest.OpCreate, made, &fuse.CreateIn{Flags: syscall.O_WRONLY, Mode: 0o644}, "planted"); rep.Errno != -int32(syscall.ENOTDIR) {
		t.Errorf("CREATE under a made symlink: errno %d", rep.Errno)
	}
	// ".." from the root is the root.
	if id, e := r.lookup(fusetest.RootID, ".."); e == 0 && id != fusetest.RootID {
		t.Errorf("LOOKUP .. from the root gave node %d", id)
	}
	r.checkOutside()
}

// TestIoctlRefused: an ioctl on an open shared file never reaches the host
// file (go-fuse's loopback would issue the guest's request there).
func TestIoctlRefused(t *testing.T) {
	r := newRig(t, false)
	file := r.mustLookup(fusetest.RootID, "file")
	open := r.req(fusetest.OpOpen, file, &fuse.OpenIn{Flags: syscall.O_RDONLY})
	if open.Errno != 0 {
		t.Fatalf("OPEN: errno %d", open.Errno)
	}
	const fsIocGetflags = 0x80086601 // FS_IOC_GETFLAGS, which ext4 and tmpfs answer
	rep := r.req(fusetest.OpIoctl, file, &fuse.IoctlIn{Fh: open.Open(0).Fh, Cmd: fsIocGetflags, OutSize: 8})
	if rep.Errno != -int32(syscall.ENOTTY) {
		t.Errorf("IOCTL: errno %d, want ENOTTY", rep.Errno)
	}
}

func TestReadOnlyRefuses(t *testing.T) {
	r := newRig(t, true)
	file := r.mustLookup(fusetest.RootID, "file")
	sub := r.mustLookup(fusetest.RootID, "sub")
	erofs := -int32(syscall.EROFS)
	for _, c := range []struct {
		name  string
		op    uint32
		node  uint64
		in    any
		names []string
	}{
		{"open for write", fusetest.OpOpen, file, &fuse.OpenIn{Flags: syscall.O_WRONLY}, nil},
		{"open with truncate", fusetest.OpOpen, file, &fuse.OpenIn{Flags: syscall.O_RDONLY | syscall.O_TRUNC}, nil},
		{"create", fusetest.OpCreate, fusetest.RootID, &fuse.CreateIn{Flags: syscall.O_WRONLY, Mode: 0o644}, []string{"new"}},
		{"mkdir", fusetest.OpMkdir, fusetest.RootID, &fuse.MkdirIn{Mode: 0o755}, []string{"new"}},
		{"unlink", fusetest.OpUnlink, fusetest.RootID, nil, []string{"file"}},
		{"rmdir", fusetest.OpRmdir, fusetest.RootID, nil, []string{"sub"}},
		{"rename", fusetest.OpRename, fusetest.RootID, &fusetest.RenameIn{Newdir: sub}, []string{"file", "moved"}},
		{"setattr", fusetest.OpSetattr, file, &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_SIZE}}, nil},
		{"symlink", fusetest.OpSymlink, fusetest.RootID, nil, []string{"l", "file"}},
		{"link", fusetest.OpLink, fusetest.RootID, &fuse.LinkIn{Oldnodeid: file}, []string{"hard"}},
		{"setxattr", fusetest.OpSetxattr, file, &fuse.SetXAttrIn{Size: 1}, []string{"user.x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r.t = t
			if rep := r.req(c.op, c.node, c.in, c.names...); rep.Errno != erofs {
				t.Errorf("errno %d, want EROFS", rep.Errno)
			}
		})
	}
	r.t = t
	got, err := os.ReadFile(filepath.Join(r.dir, "file"))
	if err != nil || string(got) != "inside\n" {
		t.Errorf("file after refused writes: %q %v", got, err)
	}
	ents, _ := os.ReadDir(r.dir)
	if len(ents) != 4 {
		t.Errorf("share holds %d entries after refused requests, want 4", len(ents))
	}
	// Reading still works.
	if rep := r.req(fusetest.OpOpen, file, &fuse.OpenIn{Flags: syscall.O_RDONLY}); rep.Errno != 0 {
		t.Errorf("read-only open: errno %d", rep.Errno)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, nil, 0o644)
	for _, p := range []string{filepath.Join(dir, "missing"), f} {
		if _, err := New(p, false); err == nil {
			t.Errorf("New(%s): no error", p)
		}
	}
}

// TestBrokenAfterPanic: go-fuse panics on a node id it never gave out
// and may leave locks held when it does; the share then fails every
// request rather than risk a worker waiting for good.
func TestBrokenAfterPanic(t *testing.T) {
	r := newRig(t, false)
	if rep := r.req(fusetest.OpGetattr, 1<<40, &fuse.GetAttrIn{}); rep.Errno != -int32(syscall.EIO) {
		t.Fatalf("unknown node: errno %d, want EIO", rep.Errno)
	}
	if !r.s.Broken() {
		t.Fatal("not broken after a panic")
	}
	out := make([]byte, 4096)
	if _, err := r.s.Serve([][]byte{fusetest.Request(fusetest.OpLookup, 9, 1, nil, []string{"file"}, nil)}, [][]byte{out}); !errors.Is(err, ErrBroken) {
		t.Fatalf("after the panic: %v, want ErrBroken", err)
	}
}
