package virtio

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/govm/govm/share"
	"github.com/govm/govm/share/fusetest"
)

// fuzzShare is one share over a directory of the fuzzing process's
// (f.TempDir, removed when the process ends), initialised as a guest
// would, beside a directory no request may reach.
type fuzzShare struct {
	root    string // f.TempDir
	n       int    // shares made so far
	share   *share.Share
	fs      *FS
	outside string
}

// device returns the share's device, making a new share when there is
// none yet or a request made go-fuse panic.
func (z *fuzzShare) device(t *testing.T) *FS {
	if z.share != nil && !z.share.Broken() {
		return z.fs
	}
	z.n++
	base := filepath.Join(z.root, fmt.Sprint(z.n))
	dir, outside := filepath.Join(base, "shared"), filepath.Join(base, "outside")
	for _, err := range []error{
		os.MkdirAll(filepath.Join(dir, "sub"), 0o755),
		os.MkdirAll(outside, 0o755),
		os.WriteFile(filepath.Join(dir, "file"), []byte("inside"), 0o644),
		os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o644),
		os.Symlink(outside, filepath.Join(dir, "out")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := share.New(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 4096)
	if _, err := s.Serve([][]byte{fusetest.Init(0)}, [][]byte{out}); err != nil {
		t.Fatal(err)
	}
	fs, err := NewFS("fuzz", s, 1)
	if err != nil {
		t.Fatal(err)
	}
	z.share, z.fs, z.outside = s, fs, outside
	return fs
}

// FuzzFSRequest serves a FUSE request the fuzzer writes, in a chain it
// lays out, against a real directory: nothing panics, the used length
// stays within the writable buffers, and nothing outside the share
// changes.
func FuzzFSRequest(f *testing.F) {
	seed := func(op uint32, node uint64, in any, names ...string) []byte {
		return fusetest.Request(op, 1, node, in, names, nil)
	}
	for _, s := range [][]byte{
		seed(fusetest.OpLookup, 1, nil, "file"),
		seed(fusetest.OpLookup, 1, nil, "../outside"),
		seed(fusetest.OpMkdir, 1, &fuse.MkdirIn{Mode: 0o755}, "d"),
		seed(fusetest.OpCreate, 1, &fuse.CreateIn{Flags: 1, Mode: 0o644}, "c"),
		seed(fusetest.OpSymlink, 1, nil, "/", "l"),
		seed(fusetest.OpRename, 1, &fusetest.RenameIn{Newdir: 1}, "file", "moved"),
		seed(fusetest.OpSetattr, 2, &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_MODE, Mode: 0o777}}),
		seed(fusetest.OpReaddirplus, 1, &fuse.ReadIn{Size: 4096}),
	} {
		f.Add(s, uint16(len(s)/2), uint16(256))
	}
	z := &fuzzShare{root: f.TempDir()}
	f.Fuzz(func(t *testing.T, req []byte, split, outLen uint16) {
		dev := z.device(t)
		m := fuzzMemory(t, nil)
		const reqAt, outAt = 0x1000, 0x8000
		req = req[:min(len(req), outAt-reqAt)]
		m.WriteAt(req, reqAt)
		s := min(int(split), len(req))
		chain := []Desc{{Addr: reqAt, Len: uint32(s)}, {Addr: reqAt + uint64(s), Len: uint32(len(req) - s)}}
		n := uint32(min(int(outLen), fuzzMem-outAt))
		chain = append(chain, Desc{Addr: outAt, Len: n, Write: true})
		fq := &dev.queues[1]
		if used := dev.serve(m, fq, chain); used > n {
			t.Fatalf("used length %d exceeds the %d writable bytes", used, n)
		}
		ents, err := os.ReadDir(z.outside)
		if err != nil || len(ents) != 1 {
			t.Fatalf("outside directory changed: %v %v", ents, err)
		}
		if b, err := os.ReadFile(filepath.Join(z.outside, "secret")); err != nil || string(b) != "outside" {
			t.Fatalf("outside file changed: %q %v", b, err)
		}
	})
}

// FuzzConsoleControl feeds the console the driver's control messages
// the fuzzer writes: nothing panics and the messages waiting for the
// driver stay bounded.
func FuzzConsoleControl(f *testing.F) {
	msg := func(id uint32, event, value uint16) []byte {
		b := make([]byte, consoleCtrlSize)
		binary.LittleEndian.PutUint32(b, id)
		binary.LittleEndian.PutUint16(b[4:], event)
		binary.LittleEndian.PutUint16(b[6:], value)
		return b
	}
	f.Add(append(msg(0, consoleDeviceReady, 1), msg(1, consolePortReady, 1)...))
	f.Add(append(msg(0, consolePortOpen, 1), msg(7, consolePortOpen, 1)...))
	f.Add(msg(0xffffffff, consolePortName, 0xffff))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := NewConsole([]ConsolePort{{Name: "a"}, {Name: "b", Out: discard{}}})
		if err != nil {
			t.Fatal(err)
		}
		for len(data) >= consoleCtrlSize {
			le := binary.LittleEndian
			c.control(le.Uint32(data), le.Uint16(data[4:]), le.Uint16(data[6:]))
			data = data[consoleCtrlSize:]
		}
		if len(c.ctrlOut) > consoleCtrlQueueLimit {
			t.Fatalf("%d pending control messages", len(c.ctrlOut))
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
