package virtio

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/govm/govm/share"
	"github.com/govm/govm/share/fusetest"
)

const (
	fsReqAt   = 0x20000 // request bytes
	fsReplyAt = 0x40000 // reply area
	fsReplyN  = 0x10000
	fsGuard   = 0xa5
)

// fsRig is a virtio-fs device on one queue of fake guest memory, serving
// a temporary directory.
type fsRig struct {
	t      testing.TB
	d      *driver
	fs     *FS
	dir    string
	unique uint64
}

func newFSRig(t testing.TB, readOnly bool) *fsRig {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hello, guest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := share.New(dir, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := NewFS("hostfs", s, 1)
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, 16)
	hi := Queue{Size: 16, Desc: 0x5000, Avail: 0x6000, Used: 0x7000}
	if err := dev.Activate(d.m, FeatureVersion1, []*Queue{&hi, &d.q}, func(int) {}); err != nil {
		t.Fatal(err)
	}
	r := &fsRig{t: t, d: d, fs: dev, dir: dir}
	if rep := r.do(fusetest.Init(0), nil); rep.Errno != 0 {
		t.Fatalf("INIT: errno %d", rep.Errno)
	}
	return r
}

// do posts req as one chain, its readable part split at the given
// offsets, and a reply area; it runs the request queue and returns the
// reply the device wrote. Bytes around the reply's length stay as the
// driver left them.
func (r *fsRig) do(req []byte, splits []int) fusetest.Reply {
	r.t.Helper()
	m := r.d.m
	m.WriteAt(req, fsReqAt)
	guard := bytes.Repeat([]byte{fsGuard}, fsReplyN)
	m.WriteAt(guard, fsReplyAt)
	var descs []Desc
	prev := 0
	for _, s := range append(splits, len(req)) {
		if s > prev {
			descs = append(descs, Desc{Addr: fsReqAt + uint64(prev), Len: uint32(s - prev)})
			prev = s
		}
	}
	descs = append(descs, Desc{Addr: fsReplyAt, Len: fsReplyN, Write: true})
	putChain(m, descBase, descs)
	r.d.publish(0)
	if err := r.fs.Process(1); err != nil {
		r.t.Fatal(err)
	}
	used := r.d.q.UsedIdx() - 1
	n, _ := m.Uint32(usedAt + usedHeader + usedElem*uint64(used%16) + 4)
	out := make([]byte, fsReplyN)
	m.ReadAt(out, fsReplyAt)
	for i := n; i < fsReplyN; i++ {
		if out[i] != fsGuard {
			r.t.Fatalf("device wrote byte %d, past the used length %d", i, n)
		}
	}
	rep, err := fusetest.Decode(out[:n])
	if err != nil {
		r.t.Fatal(err)
	}
	return rep
}

func (r *fsRig) req(op uint32, node uint64, in any, names []string, data []byte, splits []int) fusetest.Reply {
	r.t.Helper()
	r.unique++
	rep := r.do(fusetest.Request(op, r.unique, node, in, names, data), splits)
	if rep.Unique != r.unique {
		r.t.Fatalf("reply unique %d, want %d", rep.Unique, r.unique)
	}
	return rep
}

// TestFSSession runs the requests a guest makes to read, write and list
// a file, with the request split across descriptors at every byte.
func TestFSSession(t *testing.T) {
	r := newFSRig(t, false)
	lookup := fusetest.Request(fusetest.OpLookup, 100, fusetest.RootID, nil, []string{"hello"}, nil)
	for split := 0; split <= len(lookup); split++ {
		rep := r.do(lookup, []int{split})
		if rep.Errno != 0 || rep.Entry().NodeId == 0 {
			t.Fatalf("LOOKUP split at %d: errno %d", split, rep.Errno)
		}
	}
	rep := r.req(fusetest.OpLookup, fusetest.RootID, nil, []string{"hello"}, nil, nil)
	node := rep.Entry().NodeId
	if rep.Entry().Attr.Size != 13 {
		t.Fatalf("LOOKUP size %d", rep.Entry().Attr.Size)
	}
	if rep := r.req(fusetest.OpGetattr, node, &fuse.GetAttrIn{}, nil, nil, nil); rep.Errno != 0 {
		t.Fatalf("GETATTR: errno %d", rep.Errno)
	}
	rep = r.req(fusetest.OpOpen, node, &fuse.OpenIn{Flags: syscall.O_RDWR}, nil, nil, nil)
	if rep.Errno != 0 {
		t.Fatalf("OPEN: errno %d", rep.Errno)
	}
	fh := rep.Open(0).Fh
	rep = r.req(fusetest.OpRead, node, &fuse.ReadIn{Fh: fh, Size: 100}, nil, nil, []int{7, 41})
	if rep.Errno != 0 || string(rep.Body) != "hello, guest\n" {
		t.Fatalf("READ: errno %d, %q", rep.Errno, rep.Body)
	}
	payload := []byte("written by the guest")
	w := &fuse.WriteIn{Fh: fh, Offset: 13, Size: uint32(len(payload))}
	hdr := binary.Size(w)
	for _, split := range [][]int{nil, {hdr}, {hdr + 3}, {hdr - 1, hdr + 5}} {
		if rep := r.req(fusetest.OpWrite, node, w, nil, payload, split); rep.Errno != 0 {
			t.Fatalf("WRITE split %v: errno %d", split, rep.Errno)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(r.dir, "hello")); string(got) != "hello, guest\nwritten by the guest" {
		t.Fatalf("host file after WRITE: %q", got)
	}
	if rep := r.req(fusetest.OpRelease, node, &fuse.ReleaseIn{Fh: fh}, nil, nil, nil); rep.Errno != 0 {
		t.Fatalf("RELEASE: errno %d", rep.Errno)
	}
	rep = r.req(fusetest.OpOpendir, fusetest.RootID, &fuse.OpenIn{}, nil, nil, nil)
	if rep.Errno != 0 {
		t.Fatalf("OPENDIR: errno %d", rep.Errno)
	}
	dh := rep.Open(0).Fh
	rep = r.req(fusetest.OpReaddirplus, fusetest.RootID, &fuse.ReadIn{Fh: dh, Size: 4096}, nil, nil, nil)
	if rep.Errno != 0 || !bytes.Contains(rep.Body, []byte("hello")) {
		t.Fatalf("READDIRPLUS: errno %d, %q", rep.Errno, rep.Body)
	}
}

// TestFSMalformed checks chains the server cannot take: each is answered
// (EIO when a reply fits) and the queue goes on.
func TestFSMalformed(t *testing.T) {
	r := newFSRig(t, false)
	m := r.d.m
	for _, c := range []struct {
		name  string
		descs []Desc
		want  int // used length; -1: the device needs reset
	}{
		{"shorter than a header", []Desc{{Addr: fsReqAt, Len: 20}, {Addr: fsReplyAt, Len: 64, Write: true}}, 0},
		{"no reply area", []Desc{{Addr: fsReqAt, Len: 64}}, 0},
		{"reply area too small", []Desc{{Addr: fsReqAt, Len: 64}, {Addr: fsReplyAt, Len: 8, Write: true}}, 0},
		{"outside RAM", []Desc{{Addr: ramSize - 8, Len: 64}, {Addr: fsReplyAt, Len: 64, Write: true}}, -1},
		{"readable after writable", []Desc{{Addr: fsReplyAt, Len: 64, Write: true}, {Addr: fsReqAt, Len: 64}}, 0},
		{"bad opcode", []Desc{{Addr: fsReqAt, Len: 64}, {Addr: fsReplyAt, Len: 64, Write: true}}, fuseOutHeaderSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := fusetest.Request(9999, 7, fusetest.RootID, nil, nil, make([]byte, 24))
			m.WriteAt(req, fsReqAt)
			putChain(m, descBase, c.descs)
			r.d.publish(0)
			err := r.fs.Process(1)
			if c.want < 0 {
				if err == nil {
					t.Error("no error: the device should need reset")
				}
				r.d.q.Unpop(0)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			used := r.d.q.UsedIdx() - 1
			n, _ := m.Uint32(usedAt + usedHeader + usedElem*uint64(used%16) + 4)
			if int(n) != c.want {
				t.Errorf("used length %d, want %d", n, c.want)
			}
		})
	}
	// The device still serves.
	if rep := r.req(fusetest.OpLookup, fusetest.RootID, nil, []string{"hello"}, nil, nil); rep.Errno != 0 {
		t.Fatalf("LOOKUP after malformed chains: errno %d", rep.Errno)
	}
}

func TestFSConfig(t *testing.T) {
	if _, err := NewFS("", nil, 1); err == nil {
		t.Error("empty tag accepted")
	}
	if _, err := NewFS(string(make([]byte, FSTagMax+1)), nil, 1); err == nil {
		t.Error("37-byte tag accepted")
	}
	f, err := NewFS("tag", nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	if f.NumQueues() != 5 {
		t.Errorf("%d queues, want hiprio + 4", f.NumQueues())
	}
	var c [fsCfgSize]byte
	f.ReadConfig(0, c[:])
	if string(c[:3]) != "tag" || c[3] != 0 || binary.LittleEndian.Uint32(c[FSTagMax:]) != 4 {
		t.Errorf("config %x", c)
	}
}

// BenchmarkFSRead serves one 4 KiB READ per operation through the queue,
// the device and the share.
func BenchmarkFSRead(b *testing.B) {
	r := newFSRig(b, false)
	os.WriteFile(filepath.Join(r.dir, "hello"), make([]byte, 4096), 0o644)
	node := r.req(fusetest.OpLookup, fusetest.RootID, nil, []string{"hello"}, nil, nil).Entry().NodeId
	fh := r.req(fusetest.OpOpen, node, &fuse.OpenIn{}, nil, nil, nil).Open(0).Fh
	req := fusetest.Request(fusetest.OpRead, 1, node, &fuse.ReadIn{Fh: fh, Size: 4096}, nil, nil)
	m := r.d.m
	m.WriteAt(req, fsReqAt)
	putChain(m, descBase, []Desc{{Addr: fsReqAt, Len: uint32(len(req))}, {Addr: fsReplyAt, Len: 16}, {Addr: fsReplyAt + 16, Len: 4096, Write: true}})
	writeDesc(m, descBase, 1, fsReplyAt, 16, descFlagWrite|descFlagNext, 2)
	b.ReportAllocs()
	for b.Loop() {
		r.d.publish(0)
		if err := r.fs.Process(1); err != nil {
			b.Fatal(err)
		}
	}
}
