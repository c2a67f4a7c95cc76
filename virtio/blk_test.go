package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/govm/govm/mem"
)

// memDisk is an in-memory Backend with injectable failures.
type memDisk struct {
	data      []byte
	syncErr   error
	writeErr  error
	readErr   error
	syncCalls int
}

func (d *memDisk) ReadvAt(v *mem.IOVec, off int64) error {
	if d.readErr != nil {
		return d.readErr
	}
	for i := range v.Len() {
		off += int64(copy(v.Buffer(i), d.data[off:]))
	}
	return nil
}
func (d *memDisk) WritevAt(v *mem.IOVec, off int64) error {
	if d.writeErr != nil {
		return d.writeErr
	}
	for i := range v.Len() {
		off += int64(copy(d.data[off:], v.Buffer(i)))
	}
	return nil
}
func (d *memDisk) Sync() error { d.syncCalls++; return d.syncErr }
func (d *memDisk) Punch(off, n int64, zero bool) error {
	clear(d.data[off : off+n])
	return nil
}

const (
	hdrAt    = 0x100
	dataAt   = 0x20000
	statusAt = 0x900
)

func blkMem(t *testing.T) *mem.Memory {
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, 1<<20)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func putHeader(m *mem.Memory, addr uint64, typ uint32, sector uint64) {
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], typ)
	binary.LittleEndian.PutUint64(h[8:], sector)
	m.WriteAt(h[:], addr)
}

func TestParseBlkRequest(t *testing.T) {
	const capacity = 64 // sectors
	status := Desc{Addr: statusAt, Len: 1, Write: true}
	tests := []struct {
		name   string
		typ    uint32
		sector uint64
		chain  []Desc
		want   error
		data   uint64
	}{
		{"read", BlkTypeIn, 0, []Desc{{hdrAt, 16, false}, {dataAt, 4096, true}, status}, nil, 4096},
		{"write", BlkTypeOut, 8, []Desc{{hdrAt, 16, false}, {dataAt, 512, false}, status}, nil, 512},
		{"header split across descriptors", BlkTypeIn, 0, []Desc{{hdrAt, 8, false}, {hdrAt + 8, 8, false}, {dataAt, 512, true}, status}, nil, 512},
		{"header and data in one descriptor", BlkTypeOut, 0, []Desc{{hdrAt, 16 + 512, false}, status}, nil, 512},
		{"status inside the last data buffer", BlkTypeIn, 0, []Desc{{hdrAt, 16, false}, {dataAt, 513, true}}, nil, 512},
		{"flush", BlkTypeFlush, 0, []Desc{{hdrAt, 16, false}, status}, nil, 0},
		{"get id", BlkTypeGetID, 0, []Desc{{hdrAt, 16, false}, {dataAt, 20, true}, status}, nil, 20},
		{"short header", BlkTypeIn, 0, []Desc{{hdrAt, 8, false}, status}, ErrShortHeader, 0},
		{"no status", BlkTypeIn, 0, []Desc{{hdrAt, 16, false}, {dataAt, 512, true}, {statusAt, 0, true}}, ErrNoStatus, 0},
		{"status not writable", BlkTypeIn, 0, []Desc{{hdrAt, 16, false}, {statusAt, 1, false}}, ErrNoStatus, 0},
		{"empty chain", BlkTypeIn, 0, nil, ErrNoStatus, 0},
		{"read into a read-only buffer", BlkTypeIn, 0, []Desc{{hdrAt, 16, false}, {dataAt, 512, false}, status}, ErrDirection, 0},
		{"write from a writable buffer", BlkTypeOut, 0, []Desc{{hdrAt, 16, false}, {dataAt, 512, true}, status}, ErrDirection, 0},
		{"readable after writable", BlkTypeOut, 0, []Desc{{hdrAt, 16, false}, {dataAt, 512, true}, {dataAt + 512, 512, false}, status}, ErrDirection, 0},
		{"length not a multiple of 512", BlkTypeIn, 0, []Desc{{hdrAt, 16, false}, {dataAt, 100, true}, status}, ErrUnaligned, 0},
		{"past capacity", BlkTypeIn, 63, []Desc{{hdrAt, 16, false}, {dataAt, 1024, true}, status}, ErrPastCapacity, 0},
		{"last sector", BlkTypeIn, 63, []Desc{{hdrAt, 16, false}, {dataAt, 512, true}, status}, nil, 512},
		{"sector overflow", BlkTypeIn, ^uint64(0), []Desc{{hdrAt, 16, false}, {dataAt, 512, true}, status}, ErrPastCapacity, 0},
		{"unknown type", 99, 0, []Desc{{hdrAt, 16, false}, status}, ErrUnsupported, 0},
		{"zero-length data buffer", BlkTypeIn, 0, []Desc{{hdrAt, 16, false}, {dataAt, 0, true}, {dataAt, 512, true}, status}, ErrEmptyBuffer, 0},
		{"discard segment size", BlkTypeDiscard, 0, []Desc{{hdrAt, 16, false}, {dataAt, 10, false}, status}, ErrUnaligned, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := blkMem(t)
			putHeader(m, hdrAt, tt.typ, tt.sector)
			var req BlkRequest
			err := ParseBlkRequest(m, tt.chain, capacity, &req)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && req.DataLen != tt.data {
				t.Fatalf("data %d bytes, want %d", req.DataLen, tt.data)
			}
		})
	}
}

// blkRig drives a Blk through a real queue in fake memory.
type blkRig struct {
	d    *driver
	blk  *Blk
	disk *memDisk
	irqs int
}

func newBlkRig(t testing.TB, readOnly bool) *blkRig {
	d := newDriver(t, 16)
	disk := &memDisk{data: make([]byte, 64*512)}
	blk, err := NewBlk(disk, int64(len(disk.data)), BlkOptions{ReadOnly: readOnly, Serial: "serial-1", Discard: true})
	if err != nil {
		t.Fatal(err)
	}
	r := &blkRig{d: d, blk: blk, disk: disk}
	if err := blk.Activate(d.m, FeatureVersion1, []*Queue{&d.q}, func(int) { r.irqs++ }); err != nil {
		t.Fatal(err)
	}
	return r
}

// request posts header + data + status and runs the device; it returns
// the status byte and the used length.
func (r *blkRig) request(t testing.TB, typ uint32, sector uint64, data []byte, write bool) (uint8, uint32) {
	t.Helper()
	m := r.d.m
	putHeader(m, hdrAt, typ, sector)
	r.d.putDesc(descBase, 0, hdrAt, 16, descFlagNext, 1)
	next := uint16(1)
	if data != nil {
		flags := uint16(descFlagNext)
		if write {
			flags |= descFlagWrite
		}
		m.WriteAt(data, dataAt)
		r.d.putDesc(descBase, 1, dataAt, uint32(len(data)), flags, 2)
		next = 2
	}
	m.PutUint16(statusAt, 0xff)
	r.d.putDesc(descBase, next, statusAt, 1, descFlagWrite, 0)
	r.d.publish(0)
	if err := r.blk.Process(0); err != nil {
		t.Fatal(err)
	}
	st, _ := m.Uint16(statusAt)
	used := r.d.q.UsedIdx() - 1
	n, _ := m.Uint32(usedAt + usedHeader + usedElem*uint64(used%16) + 4)
	return uint8(st), n
}

func TestBlkReadWriteFlush(t *testing.T) {
	r := newBlkRig(t, false)
	pattern := bytes.Repeat([]byte("govm"), 256) // 1 KiB
	if st, n := r.request(t, BlkTypeOut, 3, pattern, false); st != BlkStatusOK || n != 1 {
		t.Fatalf("write: status %d used %d", st, n)
	}
	if !bytes.Equal(r.disk.data[3*512:5*512], pattern) {
		t.Fatal("disk does not hold the written data")
	}
	buf := make([]byte, 1024)
	if st, n := r.request(t, BlkTypeIn, 3, buf, true); st != BlkStatusOK || n != 1025 {
		t.Fatalf("read: status %d used %d", st, n)
	}
	got := make([]byte, 1024)
	r.d.m.ReadAt(got, dataAt)
	if !bytes.Equal(got, pattern) {
		t.Fatal("guest did not get the data")
	}
	if st, _ := r.request(t, BlkTypeFlush, 0, nil, false); st != BlkStatusOK || r.disk.syncCalls != 1 {
		t.Fatalf("flush status %d, syncs %d", st, r.disk.syncCalls)
	}
	id := make([]byte, 20)
	if st, n := r.request(t, BlkTypeGetID, 0, id, true); st != BlkStatusOK || n != 21 {
		t.Fatalf("get id: status %d used %d", st, n)
	}
	r.d.m.ReadAt(id, dataAt)
	if string(bytes.TrimRight(id, "\x00")) != "serial-1" {
		t.Fatalf("id %q", id)
	}
	if st, _ := r.request(t, 42, 0, nil, false); st != BlkStatusUnsupp {
		t.Fatalf("unknown type: status %d", st)
	}
	if st, _ := r.request(t, BlkTypeIn, 64, make([]byte, 512), true); st != BlkStatusIOErr {
		t.Fatalf("read past the end: status %d", st)
	}
	if r.irqs == 0 {
		t.Fatal("no interrupt")
	}
}

func TestBlkFailedFlushSticks(t *testing.T) {
	r := newBlkRig(t, false)
	r.disk.syncErr = errors.New("EIO")
	if st, _ := r.request(t, BlkTypeFlush, 0, nil, false); st != BlkStatusIOErr {
		t.Fatalf("status %d", st)
	}
	r.disk.syncErr = nil // the file system recovered; the lost data did not
	if st, _ := r.request(t, BlkTypeFlush, 0, nil, false); st != BlkStatusIOErr {
		t.Fatalf("flush after a failed fdatasync: status %d, want IOERR", st)
	}
}

func TestBlkReadOnlyAndWriteErrors(t *testing.T) {
	r := newBlkRig(t, true)
	if r.blk.Features()&BlkFeatureRO == 0 {
		t.Fatal("RO not offered")
	}
	if st, _ := r.request(t, BlkTypeOut, 0, make([]byte, 512), false); st != BlkStatusIOErr {
		t.Fatalf("write to a read-only disk: status %d", st)
	}
	w := newBlkRig(t, false)
	w.disk.writeErr = errors.New("ENOSPC")
	if st, _ := w.request(t, BlkTypeOut, 0, make([]byte, 512), false); st != BlkStatusIOErr {
		t.Fatalf("backend write error: status %d", st)
	}
}

func TestBlkConfig(t *testing.T) {
	r := newBlkRig(t, false)
	b := make([]byte, 8)
	r.blk.ReadConfig(blkCfgCapacity, b)
	if binary.LittleEndian.Uint64(b) != 64 {
		t.Fatalf("capacity %d", binary.LittleEndian.Uint64(b))
	}
	r.blk.ReadConfig(blkCfgBlkSize, b[:4])
	if binary.LittleEndian.Uint32(b) != 512 {
		t.Fatal("blk_size")
	}
	// seg_max: a request of that many data segments plus its header and
	// status fits the ring, and the device's vector of guest buffers
	// holds it without growing.
	r.blk.ReadConfig(blkCfgSegMax, b[:4])
	if got := binary.LittleEndian.Uint32(b); got != blkQueueMax-2 || int(got) > mem.IOVecMax {
		t.Fatalf("seg_max %d (queue %d, %d buffers in one preadv)", got, blkQueueMax, mem.IOVecMax)
	}
	r.blk.ReadConfig(1000, b) // past the end: zeros, no panic
}

// TestBlkTooManySegments: a request of more data segments than one
// preadv takes (an indirect table can hold them, past the seg_max
// offered) fails with IOERR and leaves the disk alone; one of seg_max
// segments is served.
func TestBlkTooManySegments(t *testing.T) {
	for _, tc := range []struct {
		segs int
		want uint8
	}{{blkSegMax, BlkStatusOK}, {mem.IOVecMax, BlkStatusOK}, {mem.IOVecMax + 1, BlkStatusIOErr}} {
		r := newBlkRig(t, false)
		m := r.d.m
		putHeader(m, hdrAt, BlkTypeOut, 0)
		chain := []Desc{{hdrAt, blkHeaderSize, false}}
		for i := range tc.segs {
			if err := m.WriteAt([]byte{1}, dataAt+uint64(i)*16); err != nil {
				t.Fatal(err)
			}
			chain = append(chain, Desc{dataAt + uint64(i)*16, 16, false})
		}
		// 16-byte segments: a sector in each 32, so the total is whole.
		if tc.segs%32 != 0 {
			chain = append(chain, Desc{dataAt + uint64(tc.segs)*16, uint32(512 - tc.segs%32*16), false})
		}
		chain = append(chain, Desc{statusAt, 1, true})
		n := r.blk.serve(m, &r.blk.queues[0], chain)
		st := make([]byte, 1)
		_ = m.ReadAt(st, statusAt)
		if n != 1 || st[0] != tc.want {
			t.Errorf("%d segments: status %d, used %d; want %d, 1", tc.segs, st[0], n, tc.want)
		}
		if wrote := r.disk.data[0] == 1; wrote != (tc.want == BlkStatusOK) {
			t.Errorf("%d segments: disk written %v", tc.segs, wrote)
		}
	}
}

func BenchmarkBlkParse(b *testing.B) {
	m, _ := mem.New(mem.Region{Base: 0, Data: make([]byte, 1<<20)})
	putHeader(m, hdrAt, BlkTypeIn, 8)
	chain := []Desc{{hdrAt, 16, false}, {dataAt, 4096, true}, {statusAt, 1, true}}
	req := BlkRequest{Data: make([]Segment, 0, 8)}
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseBlkRequest(m, chain, 1<<20, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFileBackendVectors: many buffers of odd sizes go to the file and
// come back in order, with no allocation per call; a read past the end of
// the file is an error, not a short success; the most buffers one preadv
// takes move in one call.
func TestFileBackendVectors(t *testing.T) {
	path := t.TempDir() + "/disk.img"
	if err := os.WriteFile(path, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	fb, size, _, err := OpenDisk(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	var src, dst [][]byte
	for i := range 21 {
		n := 512 + i*97
		src, dst = append(src, bytes.Repeat([]byte{byte(i + 1)}, n)), append(dst, make([]byte, n))
	}
	v := mem.NewIOVec(mem.IOVecMax)
	load := func(bufs [][]byte) *mem.IOVec {
		v.Reset()
		for _, b := range bufs {
			if err := v.AddHost(b); err != nil {
				t.Fatal(err)
			}
		}
		return v
	}
	if err := fb.WritevAt(load(src), 1000); err != nil {
		t.Fatal(err)
	}
	if err := fb.ReadvAt(load(dst), 1000); err != nil {
		t.Fatal(err)
	}
	for i := range src {
		if !bytes.Equal(src[i], dst[i]) {
			t.Fatalf("buffer %d came back different", i)
		}
	}
	allocs := testing.AllocsPerRun(20, func() { _ = fb.ReadvAt(load(dst), 1000) })
	if allocs != 0 {
		t.Errorf("ReadvAt of %d buffers: %v allocations per call, want 0", len(dst), allocs)
	}
	if err := fb.ReadvAt(load([][]byte{make([]byte, 4096)}), size-512); err == nil {
		t.Error("a read past the end of the file succeeded")
	}
	// A full list of 64-byte buffers: one pwritev, one preadv.
	big := make([]byte, mem.IOVecMax*64)
	for i := range big {
		big[i] = byte(i / 64)
	}
	v.Reset()
	for i := range mem.IOVecMax {
		if err := v.AddHost(big[i*64 : (i+1)*64]); err != nil {
			t.Fatal(err)
		}
	}
	if err := fb.WritevAt(v, 0); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, len(big))
	if err := fb.ReadvAt(load([][]byte{back}), 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, big) {
		t.Error("a full list of buffers came back different")
	}
}

// TestBlkBackendFaults: every failure of the file underneath reaches the
// guest as IOERR, and the device keeps serving.
func TestBlkBackendFaults(t *testing.T) {
	tests := []struct {
		name   string
		inject func(d *memDisk)
		typ    uint32
		write  bool // the data buffer is device-writable (a read)
	}{
		{"read EIO", func(d *memDisk) { d.readErr = syscall.EIO }, BlkTypeIn, true},
		{"write EIO", func(d *memDisk) { d.writeErr = syscall.EIO }, BlkTypeOut, false},
		{"write ENOSPC", func(d *memDisk) { d.writeErr = syscall.ENOSPC }, BlkTypeOut, false},
		{"short write", func(d *memDisk) { d.writeErr = io.ErrShortWrite }, BlkTypeOut, false},
		{"fdatasync EIO", func(d *memDisk) { d.syncErr = syscall.EIO }, BlkTypeFlush, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newBlkRig(t, false)
			tt.inject(r.disk)
			var data []byte
			if tt.typ != BlkTypeFlush {
				data = make([]byte, 1024)
			}
			if st, _ := r.request(t, tt.typ, 2, data, tt.write); st != BlkStatusIOErr {
				t.Fatalf("status %d, want IOERR", st)
			}
			if st, _ := r.request(t, BlkTypeGetID, 0, make([]byte, 20), true); st != BlkStatusOK {
				t.Fatalf("the next request: status %d, want OK", st)
			}
		})
	}
}

// TestFileBackendFullDisk: a disk image on a file system that runs out of
// space. The write that does not fit fails (pwritev stops short, then
// ENOSPC); the guest sees IOERR, and earlier data stays.
func TestFileBackendFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("mounting a 64 KiB tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, 0)
	path := filepath.Join(dir, "disk.img")
	// A sparse 1 MiB image on a 64 KiB file system.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	fb, size, _, err := OpenDisk(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	blk, err := NewBlk(fb, size, BlkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, 16)
	r := &blkRig{d: d, blk: blk}
	if err := blk.Activate(d.m, FeatureVersion1, []*Queue{&d.q}, func(int) {}); err != nil {
		t.Fatal(err)
	}
	first := bytes.Repeat([]byte{0xab}, 4096)
	if st, _ := r.request(t, BlkTypeOut, 0, first, false); st != BlkStatusOK {
		t.Fatalf("a write that fits: status %d", st)
	}
	// 32 KiB at a time until the file system is full.
	big := bytes.Repeat([]byte{0xcd}, 32<<10)
	failed := false
	for sector := uint64(8); sector+64 <= uint64(size)/SectorSize && !failed; sector += 64 {
		st, _ := r.request(t, BlkTypeOut, sector, big, false)
		switch st {
		case BlkStatusOK:
		case BlkStatusIOErr:
			failed = true
		default:
			t.Fatalf("status %d at sector %d", st, sector)
		}
	}
	if !failed {
		t.Fatal("1 MiB of writes fit in a 64 KiB file system")
	}
	back := make([]byte, 4096)
	st, _ := r.request(t, BlkTypeIn, 0, back, true)
	if err := d.m.ReadAt(back, dataAt); err != nil {
		t.Fatal(err)
	}
	if st != BlkStatusOK || !bytes.Equal(back, first) {
		t.Fatalf("reading back the first write: status %d, same %v", st, bytes.Equal(back, first))
	}
}

// TestBlkMultiQueue: with Queues > 1 the device offers VIRTIO_BLK_F_MQ
// and says num_queues; with it negotiated each queue's requests are
// served by Process of that queue and interrupt that queue's vector;
// without, only the first queue is served (5.2.2). More queues than
// BlkMaxQueues are refused.
func TestBlkMultiQueue(t *testing.T) {
	if _, err := NewBlk(&memDisk{data: make([]byte, 512)}, 512, BlkOptions{Queues: BlkMaxQueues + 1}); err == nil {
		t.Error("a disk of more than BlkMaxQueues queues was made")
	}
	one, _ := NewBlk(&memDisk{data: make([]byte, 512)}, 512, BlkOptions{})
	if one.NumQueues() != 1 || one.Features()&BlkFeatureMQ != 0 {
		t.Errorf("default disk: %d queues, MQ offered %v", one.NumQueues(), one.Features()&BlkFeatureMQ != 0)
	}
	for _, tc := range []struct {
		name     string
		features uint64
		served   bool // queue 1's request
	}{
		{"MQ negotiated", FeatureVersion1 | BlkFeatureMQ, true},
		{"MQ not negotiated", FeatureVersion1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t, 16)
			m := d.m
			disk := &memDisk{data: make([]byte, 64*512)}
			blk, err := NewBlk(disk, int64(len(disk.data)), BlkOptions{Queues: 4})
			if err != nil {
				t.Fatal(err)
			}
			if blk.NumQueues() != 4 || blk.Features()&BlkFeatureMQ == 0 {
				t.Fatalf("%d queues, features %#x", blk.NumQueues(), blk.Features())
			}
			cfg := make([]byte, 2)
			blk.ReadConfig(blkCfgNumQueues, cfg)
			if n := binary.LittleEndian.Uint16(cfg); n != 4 {
				t.Fatalf("num_queues %d, want 4", n)
			}
			// Queue 1's rings lie past queue 0's; queues 2 and 3 stay off.
			q1 := Queue{Size: 16, Desc: 0x4000, Avail: 0x5000, Used: 0x6000}
			if err := q1.Validate(m, 256); err != nil {
				t.Fatal(err)
			}
			var irqs []int
			if err := blk.Activate(m, tc.features, []*Queue{&d.q, &q1, nil, nil}, func(q int) { irqs = append(irqs, q) }); err != nil {
				t.Fatal(err)
			}
			// A one-sector write of 0x11 at sector 5 on queue 1.
			const hdr1, data1, status1 = 0x7000, 0x8000, 0x7100
			putHeader(m, hdr1, BlkTypeOut, 5)
			_ = m.WriteAt(bytes.Repeat([]byte{0x11}, 512), data1)
			_ = m.WriteAt([]byte{0xff}, status1)
			putChain(m, q1.Desc, []Desc{{hdr1, 16, false}, {data1, 512, false}, {status1, 1, true}})
			m.PutUint16(q1.Avail+availHeader, 0)
			m.PutUint16(q1.Avail+2, 1)
			if err := blk.Process(1); err != nil {
				t.Fatal(err)
			}
			st, _ := m.Uint16(status1)
			wrote := disk.data[5*512] == 0x11
			if tc.served && (uint8(st) != BlkStatusOK || !wrote || len(irqs) != 1 || irqs[0] != 1) {
				t.Errorf("queue 1: status %d, written %v, interrupts %v; want OK, true, [1]", uint8(st), wrote, irqs)
			}
			if !tc.served && (uint8(st) != 0xff || wrote || len(irqs) != 0 || q1.UsedIdx() != 0) {
				t.Errorf("queue 1 without MQ: status %d, written %v, interrupts %v, used %d; want it untouched", uint8(st), wrote, irqs, q1.UsedIdx())
			}
			// Queue 0 serves either way, and a queue index out of range
			// is no request.
			r := &blkRig{d: d, blk: blk, disk: disk}
			if st, _ := r.request(t, BlkTypeOut, 7, make([]byte, 512), false); st != BlkStatusOK {
				t.Errorf("queue 0: status %d", st)
			}
			if err := blk.Process(4); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestBlkQueuesConcurrent: two queues' workers serve at once (the race
// detector watches what they share: the device, memory, the backend),
// every request landing whole.
func TestBlkQueuesConcurrent(t *testing.T) {
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, 1<<20)})
	if err != nil {
		t.Fatal(err)
	}
	disk := &memDisk{data: make([]byte, 64*512)}
	blk, err := NewBlk(disk, int64(len(disk.data)), BlkOptions{Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Each queue holds one chain: a one-sector write of its own byte to
	// its own sector, posted again and again.
	qs := make([]*Queue, 2)
	for i := range qs {
		base := uint64(0x10000 * (i + 1))
		qs[i] = &Queue{Size: 4, Desc: base, Avail: base + 0x1000, Used: base + 0x2000}
		if err := qs[i].Validate(m, 256); err != nil {
			t.Fatal(err)
		}
		putHeader(m, base+0x3000, BlkTypeOut, uint64(i))
		_ = m.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, 512), base+0x4000)
		putChain(m, base, []Desc{{base + 0x3000, 16, false}, {base + 0x4000, 512, false}, {base + 0x3100, 1, true}})
	}
	if err := blk.Activate(m, FeatureVersion1|BlkFeatureMQ, qs, func(int) {}); err != nil {
		t.Fatal(err)
	}
	const rounds = 200
	errs := make(chan error, len(qs))
	for i, q := range qs {
		go func() {
			for n := range rounds {
				_ = m.WriteAt([]byte{0xff}, q.Desc+0x3100)
				m.PutUint16(q.Avail+2, uint16(n+1))
				if err := blk.Process(i); err != nil {
					errs <- err
					return
				}
				st, _ := m.Uint16(q.Desc + 0x3100)
				if uint8(st) != BlkStatusOK || q.UsedIdx() != uint16(n+1) {
					errs <- fmt.Errorf("queue %d request %d: status %d, used idx %d", i, n, uint8(st), q.UsedIdx())
					return
				}
			}
			errs <- nil
		}()
	}
	for range qs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range qs {
		if !bytes.Equal(disk.data[i*512:(i+1)*512], bytes.Repeat([]byte{byte(i + 1)}, 512)) {
			t.Errorf("sector %d does not hold queue %d's data", i, i)
		}
	}
}

// putChain writes descs as one chain from descriptor 0 of the table at
// table (head 0; publishing it in the avail ring is the caller's).
func putChain(m *mem.Memory, table uint64, descs []Desc) {
	for i, d := range descs {
		var flags uint16
		if d.Write {
			flags |= descFlagWrite
		}
		if i < len(descs)-1 {
			flags |= descFlagNext
		}
		writeDesc(m, table, uint16(i), d.Addr, d.Len, flags, uint16(i+1))
	}
}

// BenchmarkBlkRequest serves one 4 KiB read through the queue, the
// device and the backend per operation: no allocation.
func BenchmarkBlkRequest(b *testing.B) {
	r := newBlkRig(b, false)
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		if st, _ := r.request(b, BlkTypeIn, 8, buf, true); st != BlkStatusOK {
			b.Fatalf("status %d", st)
		}
	}
}

// TestBlkDiscardFlags: discard and write-zeroes take only the flags the
// spec gives them (virtio 1.2, 5.2.6.2): the unmap flag on a write
// zeroes, none on a discard; anything else is UNSUPP and changes nothing,
// even when an earlier segment of the same request was good.
func TestBlkDiscardFlags(t *testing.T) {
	seg := func(sector uint64, n, flags uint32) []byte {
		b := make([]byte, blkSegSize)
		binary.LittleEndian.PutUint64(b[0:], sector)
		binary.LittleEndian.PutUint32(b[8:], n)
		binary.LittleEndian.PutUint32(b[12:], flags)
		return b
	}
	tests := []struct {
		name   string
		typ    uint32
		segs   []byte
		want   uint8
		zeroed bool // sectors 2-3 read as zeroes after
	}{
		{"discard", BlkTypeDiscard, seg(2, 2, 0), BlkStatusOK, true},
		{"discard with unmap", BlkTypeDiscard, seg(2, 2, blkWriteZeroesUnmap), BlkStatusUnsupp, false},
		{"discard with an unknown flag", BlkTypeDiscard, seg(2, 2, 4), BlkStatusUnsupp, false},
		{"write zeroes", BlkTypeWriteZeroes, seg(2, 2, 0), BlkStatusOK, true},
		{"write zeroes with unmap", BlkTypeWriteZeroes, seg(2, 2, blkWriteZeroesUnmap), BlkStatusOK, true},
		{"write zeroes with an unknown flag", BlkTypeWriteZeroes, seg(2, 2, 2), BlkStatusUnsupp, false},
		{"a good segment, then a bad one", BlkTypeWriteZeroes, append(seg(2, 2, 0), seg(6, 1, 0x80)...), BlkStatusUnsupp, false},
		{"past the disk's end", BlkTypeDiscard, seg(60, 8, 0), BlkStatusIOErr, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newBlkRig(t, false)
			for i := range r.disk.data {
				r.disk.data[i] = 0xaa
			}
			if st, _ := r.request(t, tt.typ, 0, tt.segs, false); st != tt.want {
				t.Fatalf("status %d, want %d", st, tt.want)
			}
			zeroed := r.disk.data[2*SectorSize] == 0 && r.disk.data[4*SectorSize-1] == 0
			if zeroed != tt.zeroed || r.disk.data[SectorSize] != 0xaa || r.disk.data[4*SectorSize] != 0xaa {
				t.Errorf("sectors 2-3 zeroed %v, want %v (neighbours %#x %#x)", zeroed, tt.zeroed, r.disk.data[SectorSize], r.disk.data[4*SectorSize])
			}
		})
	}
}
