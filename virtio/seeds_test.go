package virtio

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readSeeds returns the values of every seed file of target in dir, each
// as the lines of Go's corpus format after its header.
func readSeeds(t *testing.T, dir, target string) [][]string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, target))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, target, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if lines[0] != "go test fuzz v1" {
			t.Fatalf("%s: header %q", e.Name(), lines[0])
		}
		out = append(out, lines[1:])
	}
	return out
}

// seedBytes decodes a []byte("...") corpus value.
func seedBytes(t *testing.T, v string) []byte {
	t.Helper()
	q, ok := strings.CutPrefix(v, "[]byte(")
	if !ok || !strings.HasSuffix(q, ")") {
		t.Fatalf("not a []byte value: %q", v)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
	if err != nil {
		t.Fatalf("%q: %v", v, err)
	}
	return []byte(s)
}

// TestSeedRecorder records chains as a driver lays them out, and checks
// each seed, read back through the fuzz targets' own decoding (fuzzChain
// over fuzzMemory), is the same request: one seed per kind of request.
func TestSeedRecorder(t *testing.T) {
	dir := t.TempDir()
	r, err := NewSeedRecorder(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := fuzzMemory(t, nil)
	le := binary.LittleEndian

	// virtio-blk: a write of two sectors over three data buffers, twice
	// (one seed), then a read (a second).
	hdr := make([]byte, 16)
	le.PutUint32(hdr, BlkTypeOut)
	le.PutUint64(hdr[8:], 9)
	m.WriteAt(hdr, 0x1000)
	m.WriteAt(bytes.Repeat([]byte{0xab}, 1024), 0x2000)
	write := []Desc{{Addr: 0x1000, Len: 16}, {Addr: 0x2000, Len: 512}, {Addr: 0x2200, Len: 256}, {Addr: 0x2300, Len: 256}, {Addr: 0x3000, Len: 1, Write: true}}
	blk := r.observer(TypeBlock, 0, 0)
	blk(m, write)
	blk(m, write)
	le.PutUint32(hdr, BlkTypeIn)
	m.WriteAt(hdr, 0x1100)
	blk(m, []Desc{{Addr: 0x1100, Len: 16}, {Addr: 0x4000, Len: 4096, Write: true}, {Addr: 0x3000, Len: 1, Write: true}})
	seeds := readSeeds(t, dir, seedBlk)
	if len(seeds) != 2 {
		t.Fatalf("%d blk seeds, want 2 (one per kind)", len(seeds))
	}
	types := map[uint32]bool{}
	for _, s := range seeds {
		data := seedBytes(t, s[0])
		fm := fuzzMemory(t, data)
		var req BlkRequest
		if err := ParseBlkRequest(fm, fuzzChain(data), 1<<20, &req); err != nil {
			t.Fatalf("seed does not parse as a request: %v", err)
		}
		types[req.Type] = true
		if req.Sector != 9 {
			t.Errorf("sector %d, want 9", req.Sector)
		}
		if s[1] != "bool(false)" {
			t.Errorf("second value %q", s[1])
		}
	}
	if !types[BlkTypeIn] || !types[BlkTypeOut] {
		t.Errorf("request types %v, want in and out", types)
	}

	// virtio-net: only the TX queue's frames, with the features.
	frame := append(make([]byte, NetHeaderSize), bytes.Repeat([]byte{0x42}, 60)...)
	m.WriteAt(frame, 0x5000)
	if r.observer(TypeNet, netRxQueue, 0) != nil {
		t.Error("the RX queue's empty buffers recorded as seeds")
	}
	r.observer(TypeNet, netTxQueue, NetFeatureCsum)(m, []Desc{{Addr: 0x5000, Len: uint32(len(frame))}})
	seeds = readSeeds(t, dir, seedNetTx)
	if len(seeds) != 1 || seeds[0][1] != "uint64(1)" || seeds[0][2] != "bool(true)" {
		t.Fatalf("net seeds %q", seeds)
	}
	data := seedBytes(t, seeds[0][0])
	chain := fuzzChain(data)
	got := make([]byte, chain[0].Len)
	fuzzMemory(t, data).ReadAt(got, chain[0].Addr)
	if len(chain) != 1 || !bytes.Equal(got, frame) {
		t.Errorf("net seed holds %d descriptors, frame %x", len(chain), got)
	}

	// virtio-fs: a request split over two readable buffers.
	fsReq := make([]byte, 48)
	le.PutUint32(fsReq, 48)
	le.PutUint32(fsReq[4:], 1) // FUSE_LOOKUP
	m.WriteAt(fsReq, 0x6000)
	m.WriteAt([]byte("name\x00"), 0x6100)
	if r.observer(TypeFS, 0, 0) == nil || r.observer(TypeFS, 1, 0) == nil {
		t.Fatal("fs queues not recorded")
	}
	r.observer(TypeFS, 1, 0)(m, []Desc{{Addr: 0x6000, Len: 48}, {Addr: 0x6100, Len: 5}, {Addr: 0x7000, Len: 256, Write: true}})
	seeds = readSeeds(t, dir, seedFS)
	if len(seeds) != 1 {
		t.Fatalf("%d fs seeds", len(seeds))
	}
	if b := seedBytes(t, seeds[0][0]); len(b) != 53 || string(b[48:]) != "name\x00" || seeds[0][1] != "uint16(48)" || seeds[0][2] != "uint16(256)" {
		t.Errorf("fs seed %q", seeds[0])
	}

	// virtio-console: control messages from the driver.
	msg := make([]byte, consoleCtrlSize)
	le.PutUint16(msg[4:], consolePortReady)
	m.WriteAt(msg, 0x8000)
	if r.observer(TypeConsole, consoleCtrlRx, 0) != nil {
		t.Error("the control RX queue recorded")
	}
	r.observer(TypeConsole, consoleCtrlTx, 0)(m, []Desc{{Addr: 0x8000, Len: consoleCtrlSize}})
	if seeds = readSeeds(t, dir, seedConsole); len(seeds) != 1 || !bytes.Equal(seedBytes(t, seeds[0][0]), msg) {
		t.Errorf("console seeds %q", seeds)
	}

	// A nil recorder observes nothing.
	var none *SeedRecorder
	if none.observer(TypeBlock, 0, 0) != nil {
		t.Error("a nil recorder returned an observer")
	}
}
