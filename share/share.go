// Package share serves a host directory to a guest as a FUSE file system,
// the server behind a virtio-fs device.
//
// The FUSE protocol and the passthrough to host files are go-fuse's
// (fuse.ProtocolServer over fs.LoopbackNode). go-fuse trusts its kernel;
// govm does not trust the guest's, so every node is wrapped to hold the
// share's rules whatever the requests say:
//
//   - a name is one path component: never empty, ".", "..", or holding
//     '/' or NUL (the loopback joins names onto host paths);
//   - names are looked up and created only in directories: a symlink's
//     node is never a parent, so no host path runs through a symlink the
//     guest made;
//   - a symlink's node takes no operation that would follow it on the
//     host (chmod, truncate, xattrs, open);
//   - device nodes are neither created nor opened;
//   - in a read-only share every modifying request fails with EROFS on
//     the host side;
//   - no ioctl reaches a host file;
//   - path operations run one at a time, so a rename served on one queue
//     cannot race a lookup on another into a path the guest just turned
//     into a symlink. Reads and writes on open files run in parallel.
package share

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Share is a host directory served to a guest.
type Share struct {
	readOnly bool
	mu       sync.Mutex // held by every path operation
	broken   atomic.Bool
	server   *fuse.ProtocolServer
}

// ErrNotDir is returned by New for a path that is not a directory.
var ErrNotDir = errors.New("not a directory")

// cacheTimeout is how long the guest may cache names and attributes.
// The host may change a shared tree behind the guest's back; a second is
// virtiofsd's default ("auto" cache) trade between that and round trips.
const cacheTimeout = time.Second

// New serves the directory dir (symlinks in dir itself are resolved
// once, here).
func New(dir string, readOnly bool) (*Share, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(real, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: dir, Err: err}
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotDir)
	}
	s := &Share{readOnly: readOnly}
	root := &fs.LoopbackRoot{Path: real, Dev: st.Dev}
	root.RootNode = &node{LoopbackNode: &fs.LoopbackNode{RootData: root}, share: s}
	timeout := cacheTimeout
	opts := &fs.Options{EntryTimeout: &timeout, AttrTimeout: &timeout, NegativeTimeout: &timeout}
	opts.Logger = discardLogger
	raw := fs.NewNodeFS(root.RootNode, opts)
	s.server = fuse.NewProtocolServer(raw, &fuse.MountOptions{MaxWrite: MaxWrite, Logger: discardLogger, PanicHandler: s.panicked})
	return s, nil
}

// MaxWrite is the largest WRITE the server takes (and the guest sends).
const MaxWrite = 1 << 20

// ErrBroken is returned for every request once the FUSE server panicked.
var ErrBroken = errors.New("share: the file server failed; every request now fails")

// panicked is go-fuse's panic handler. go-fuse recovers a panic in a
// request but may leave its node locks held, and a later request would
// wait on them for good: from the first panic on, the share answers
// every request with EIO instead.
func (s *Share) panicked(r any) fuse.Status {
	s.broken.Store(true)
	return fuse.EIO
}

// Broken reports whether the server failed (see panicked).
func (s *Share) Broken() bool { return s.broken.Load() }

// Serve serves one FUSE request (virtio.FSServer).
func (s *Share) Serve(in, out [][]byte) (int, error) {
	if s.broken.Load() {
		return 0, ErrBroken
	}
	n, st := s.server.HandleRequest(in, out)
	if !st.Ok() {
		return 0, fmt.Errorf("fuse: %v", st)
	}
	return n, nil
}

// validName reports whether name is a single path component.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// node is a loopback node that holds the share's rules.
type node struct {
	*fs.LoopbackNode
	share *Share
}

// WrapChild wraps every node go-fuse makes below the root (the loopback
// makes only LoopbackNodes).
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if l, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: l, share: n.share}
	}
	return ops
}

func (n *node) mode() uint32 { return n.StableAttr().Mode & syscall.S_IFMT }
func (n *node) isDir() bool  { return n.mode() == syscall.S_IFDIR }
func (n *node) isLink() bool { return n.mode() == syscall.S_IFLNK }

// parentOK checks a name-based request on n: n a directory, name one
// component, and for a modifying request a writable share.
func (n *node) parentOK(name string, modifies bool) syscall.Errno {
	switch {
	case !n.isDir():
		return syscall.ENOTDIR
	case !validName(name):
		return syscall.EINVAL
	case modifies && n.share.readOnly:
		return syscall.EROFS
	}
	return 0
}

// hostPath is the node's path on the host.
func (n *node) hostPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// regularAt reports whether path is a regular file now. Opening
// anything else could block a queue's worker for good (a FIFO with no
// writer) or reach the host's devices; path operations are serialised, so
// the guest cannot swap the file between this check and the open.
func regularAt(path string) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return fs.ToErrno(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return syscall.EACCES
	}
	return 0
}

func (n *node) lock() func() {
	n.share.mu.Lock()
	return n.share.mu.Unlock
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.lock()()
	if e := n.parentOK(name, false); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Lookup(ctx, name, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.lock()()
	if e := n.parentOK(name, true); e != 0 {
		return nil, e
	}
	if t := mode & syscall.S_IFMT; t == syscall.S_IFCHR || t == syscall.S_IFBLK {
		return nil, syscall.EPERM
	}
	return n.LoopbackNode.Mknod(ctx, name, mode, 0, out)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.lock()()
	if e := n.parentOK(name, true); e != 0 {
		return nil, e
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	defer n.lock()()
	if e := n.parentOK(name, true); e != 0 {
		return e
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	defer n.lock()()
	if e := n.parentOK(name, true); e != 0 {
		return e
	}
	return n.LoopbackNode.Unlink(ctx, name)
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	defer n.lock()()
	if e := n.parentOK(name, true); e != 0 {
		return e
	}
	np, ok := newParent.(*node)
	if !ok || np.share != n.share {
		return syscall.EXDEV
	}
	if e := np.parentOK(newName, true); e != 0 {
		return e
	}
	return n.LoopbackNode.Rename(ctx, name, np.LoopbackNode, newName, flags)
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	defer n.lock()()
	if e := n.parentOK(name, true); e != 0 {
		return nil, nil, 0, e
	}
	if e := regularAt(filepath.Join(n.hostPath(), name)); e != 0 && e != syscall.ENOENT {
		return nil, nil, 0, e
	}
	return n.LoopbackNode.Create(ctx, name, flags, mode, out)
}

func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.lock()()
	if e := n.parentOK(name, true); e != 0 {
		return nil, e
	}
	if strings.ContainsRune(target, 0) {
		return nil, syscall.EINVAL
	}
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.lock()()
	if e := n.parentOK(name, true); e != 0 {
		return nil, e
	}
	t, ok := target.(*node)
	if !ok || t.share != n.share {
		return nil, syscall.EXDEV
	}
	return n.LoopbackNode.Link(ctx, t.LoopbackNode, name, out)
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	defer n.lock()()
	if !n.isLink() {
		return nil, syscall.EINVAL
	}
	return n.LoopbackNode.Readlink(ctx)
}

// openFlagsWrite are the open flags that modify a file.
const openFlagsWrite = syscall.O_WRONLY | syscall.O_RDWR | syscall.O_TRUNC | syscall.O_APPEND | syscall.O_CREAT

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	defer n.lock()()
	if n.mode() != syscall.S_IFREG {
		// Directories open through OpendirHandle; FIFOs, sockets and
		// device nodes are the host's, not the guest's.
		return nil, 0, syscall.EACCES
	}
	if n.share.readOnly && flags&openFlagsWrite != 0 {
		return nil, 0, syscall.EROFS
	}
	if e := regularAt(n.hostPath()); e != 0 {
		return nil, 0, e
	}
	// overlayfs in the guest opens its lower files with O_NOATIME, which
	// open(2) refuses (EPERM) to anyone but the file's owner: a govm run
	// by a user could not open root's files. Access times are the host's.
	return n.LoopbackNode.Open(ctx, flags&^syscall.O_NOATIME)
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	defer n.lock()()
	if !n.isDir() {
		return nil, 0, syscall.ENOTDIR
	}
	return n.LoopbackNode.OpendirHandle(ctx, flags)
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	defer n.lock()()
	if !n.isDir() {
		return nil, syscall.ENOTDIR
	}
	return n.LoopbackNode.Readdir(ctx)
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if f != nil {
		return n.LoopbackNode.Getattr(ctx, f, out)
	}
	defer n.lock()()
	return n.LoopbackNode.Getattr(ctx, f, out)
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	defer n.lock()()
	if n.share.readOnly {
		return syscall.EROFS
	}
	if f == nil && n.isLink() {
		// chmod, truncate and utimes by path follow the link on the host.
		return syscall.EOPNOTSUPP
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	defer n.lock()()
	if n.isLink() {
		return 0, syscall.ENODATA
	}
	return n.LoopbackNode.Getxattr(ctx, attr, dest)
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	defer n.lock()()
	if n.isLink() {
		return 0, 0
	}
	return n.LoopbackNode.Listxattr(ctx, dest)
}

// xattrWritable checks a request that changes n's extended attributes,
// which the host sets through n's path: a symlink would be followed.
func (n *node) xattrWritable() syscall.Errno {
	switch {
	case n.share.readOnly:
		return syscall.EROFS
	case n.isLink():
		return syscall.EOPNOTSUPP
	}
	return 0
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	defer n.lock()()
	if e := n.xattrWritable(); e != 0 {
		return e
	}
	return n.LoopbackNode.Setxattr(ctx, attr, data, flags)
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	defer n.lock()()
	if e := n.xattrWritable(); e != 0 {
		return e
	}
	return n.LoopbackNode.Removexattr(ctx, attr)
}

// Ioctl refuses every ioctl: the loopback would pass the guest's request
// number and argument to the host file's ioctl(2), which no rule above
// could confine (and govm's seccomp filter would kill govm for one it does
// not list).
func (n *node) Ioctl(ctx context.Context, f fs.FileHandle, cmd uint32, arg uint64, input []byte, output []byte) (int32, syscall.Errno) {
	return 0, syscall.ENOTTY
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	defer n.lock()()
	return n.LoopbackNode.Statfs(ctx, out)
}

func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, len uint64, flags uint64) (uint32, syscall.Errno) {
	if n.share.readOnly {
		return 0, syscall.EROFS
	}
	return n.LoopbackNode.CopyFileRange(ctx, fhIn, offIn, out, fhOut, offOut, len, flags)
}

// discardLogger swallows go-fuse's log lines: a guest's malformed
// requests must not fill govm's stderr.
var discardLogger = log.New(io.Discard, "", 0)
