package virtio

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/govm/govm/share"
	"github.com/govm/govm/share/fusetest"
)

// fuzzShare is one share over a temporary directory per fuzzing
// process, initialised as a guest would, beside a directory no request
// may reach.
var fuzzShare struct {
	once    sync.Once
	share   *share.Share
	base    string
	fs      *FS
	outside string
	err     error
}

func fuzzFS(t *testing.T) *FS {
	if fuzzShare.share != nil && fuzzShare.share.Broken() {
		// A request made go-fuse panic: start over with a new share.
		os.RemoveAll(fuzzShare.base)
		fuzzShare.once = sync.Once{}
	}
	fuzzShare.once.Do(func() {
		base, err := os.MkdirTemp("", "govm-fuzzfs-")
		if err != nil {
			fuzzShare.err = err
			return
		}
		fuzzShare.base = base
		dir, outside := filepath.Join(base, "shared"), filepath.Join(base, "outside")
		os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
		os.MkdirAll(outside, 0o755)
		os.WriteFile(filepath.Join(dir, "file"), []byte("inside"), 0o644)
		os.WriteFile(filepath.Join(outside, "secret"), []byte("outside"), 0o644)
		os.Symlink(outside, filepath.Join(dir, "out"))
		s, err := share.New(dir, false)
		if err != nil {
			fuzzShare.err = err
			return
		}
		out := make([]byte, 4096)
		if _, err := s.Serve([][]byte{fusetest.Init(0)}, [][]byte{out}); err != nil {
			fuzzShare.err = err
			return
		}
		fuzzShare.share = s
		fuzzShare.fs, fuzzShare.err = NewFS("fuzz", s, 1)
		fuzzShare.outside = outside
	})
	if fuzzShare.err != nil {
		t.Fatal(fuzzShare.err)
	}
	return fuzzShare.fs
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
	f.Fuzz(func(t *testing.T, req []byte, split, outLen uint16) {
		dev := fuzzFS(t)
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
		ents, err := os.ReadDir(fuzzShare.outside)
		if err != nil || len(ents) != 1 {
			t.Fatalf("outside directory changed: %v %v", ents, err)
		}
		if b, err := os.ReadFile(filepath.Join(fuzzShare.outside, "secret")); err != nil || string(b) != "outside" {
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
