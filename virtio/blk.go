package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/mem"
)

// virtio-blk (virtio 1.2, 5.2).
const (
	BlkFeatureSizeMax     = 1 << 1
	BlkFeatureSegMax      = 1 << 2
	BlkFeatureRO          = 1 << 5
	BlkFeatureBlkSize     = 1 << 6
	BlkFeatureFlush       = 1 << 9
	BlkFeatureMQ          = 1 << 12
	BlkFeatureDiscard     = 1 << 13
	BlkFeatureWriteZeroes = 1 << 14

	BlkTypeIn          = 0
	BlkTypeOut         = 1
	BlkTypeFlush       = 4
	BlkTypeGetID       = 8
	BlkTypeDiscard     = 11
	BlkTypeWriteZeroes = 13

	BlkStatusOK     = 0
	BlkStatusIOErr  = 1
	BlkStatusUnsupp = 2

	SectorSize    = 512
	blkHeaderSize = 16
	blkIDBytes    = 20
	blkSegSize    = 16 // discard/write-zeroes segment: sector u64, num u32, flags u32
	blkQueueMax   = 256
	// blkSegMax is the most data segments a request may have: what fits
	// the ring beside the header and status descriptors (as QEMU offers).
	// Fewer would make Linux split a 1 MiB direct transfer into
	// several requests, each costing its exits and interrupt.
	blkSegMax     = blkQueueMax - 2
	blkMaxDiscard = 1 << 22 // sectors per discard segment (2 GiB)
	// BlkMaxQueues bounds the request queues a disk offers (a queue per
	// vCPU up to it, as QEMU does).
	BlkMaxQueues = 16

	// Config space offsets (5.2.4).
	blkCfgCapacity       = 0
	blkCfgSizeMax        = 8
	blkCfgSegMax         = 12
	blkCfgBlkSize        = 20
	blkCfgNumQueues      = 34
	blkCfgMaxDiscard     = 36
	blkCfgMaxDiscardSeg  = 40
	blkCfgDiscardAlign   = 44
	blkCfgMaxWriteZeroes = 48
	blkCfgMaxWZSeg       = 52
	blkCfgWZMayUnmap     = 56
	blkCfgSize           = 60
	blkWriteZeroesUnmap  = 1 // segment flag: may deallocate (5.2.6, write zeroes only)
)

// Request parse errors. Each makes the request fail with a status; a chain
// that has no writable status byte cannot even be answered.
var (
	ErrNoStatus     = errors.New("virtio-blk: chain has no writable status byte")
	ErrShortHeader  = errors.New("virtio-blk: request header shorter than 16 bytes")
	ErrDirection    = errors.New("virtio-blk: data buffer with the wrong direction")
	ErrUnaligned    = errors.New("virtio-blk: data length not a multiple of 512")
	ErrPastCapacity = errors.New("virtio-blk: request past the end of the disk")
	ErrUnsupported  = errors.New("virtio-blk: unsupported request type")
	ErrEmptyBuffer  = errors.New("virtio-blk: zero-length buffer in the chain")
)

// Segment is a guest buffer a request reads or fills.
type Segment struct {
	Addr uint64
	Len  uint32
}

// BlkRequest is a parsed request.
type BlkRequest struct {
	Type    uint32
	Sector  uint64
	Data    []Segment // the data buffers, in order (reused between parses)
	DataLen uint64
	Status  uint64 // guest address of the status byte
}

// ParseBlkRequest parses a descriptor chain into req. It is pure: it reads
// the header from guest memory and checks every rule, but does no I/O.
// With ErrNoStatus the request cannot be answered; with any other error
// req.Status is valid and the request fails with IOERR or UNSUPP.
func ParseBlkRequest(m *mem.Memory, chain []Desc, capacity uint64, req *BlkRequest) error {
	req.Data = req.Data[:0]
	req.DataLen = 0
	if len(chain) == 0 {
		return ErrNoStatus
	}
	last := chain[len(chain)-1]
	if !last.Write || last.Len == 0 {
		return ErrNoStatus
	}
	req.Status = last.Addr + uint64(last.Len) - 1

	// Readable buffers first, then writable ones (2.7.4.2).
	var hdr [blkHeaderSize]byte
	got := 0
	seenWrite := false
	for i, d := range chain {
		length := d.Len
		if i == len(chain)-1 {
			length-- // the status byte
		} else if length == 0 {
			// No driver sends one; QEMU fails the device for it. Here
			// the request fails and the device goes on.
			return ErrEmptyBuffer
		}
		if d.Write {
			seenWrite = true
		} else if seenWrite {
			return ErrDirection
		}
		addr := d.Addr
		if got < blkHeaderSize && !d.Write {
			n := min(uint32(blkHeaderSize-got), length)
			if err := m.ReadAt(hdr[got:got+int(n)], addr); err != nil {
				return err
			}
			got += int(n)
			addr += uint64(n)
			length -= n
		}
		if length > 0 {
			req.Data = append(req.Data, Segment{Addr: addr, Len: length})
			req.DataLen += uint64(length)
		}
	}
	if got < blkHeaderSize {
		return ErrShortHeader
	}
	req.Type = binary.LittleEndian.Uint32(hdr[0:])
	req.Sector = binary.LittleEndian.Uint64(hdr[8:])

	// Every data buffer must go the right way for the type.
	wantWrite := false
	switch req.Type {
	case BlkTypeIn, BlkTypeGetID:
		wantWrite = true
	case BlkTypeOut, BlkTypeDiscard, BlkTypeWriteZeroes, BlkTypeFlush:
	default:
		return ErrUnsupported
	}
	for _, s := range req.Data {
		if dataIsWrite(chain, s) != wantWrite {
			return ErrDirection
		}
	}
	switch req.Type {
	case BlkTypeIn, BlkTypeOut:
		if req.DataLen%SectorSize != 0 {
			return ErrUnaligned
		}
		n := req.DataLen / SectorSize
		if req.Sector > capacity || n > capacity-req.Sector {
			return ErrPastCapacity
		}
	case BlkTypeDiscard, BlkTypeWriteZeroes:
		if req.DataLen == 0 || req.DataLen%blkSegSize != 0 {
			return ErrUnaligned
		}
	}
	return nil
}

// dataIsWrite reports the direction of the descriptor a segment lies in.
func dataIsWrite(chain []Desc, s Segment) bool {
	for _, d := range chain {
		if s.Addr >= d.Addr && s.Addr-d.Addr < uint64(d.Len) {
			return d.Write
		}
	}
	return false
}

// Backend is what a virtio-blk device reads and writes: a disk image file
// in govm, an in-memory disk in tests.
type Backend interface {
	// ReadvAt fills the buffers of v in order from byte off, and
	// WritevAt writes them there; each moves every byte or returns an
	// error, and may spend v.
	ReadvAt(v *mem.IOVec, off int64) error
	WritevAt(v *mem.IOVec, off int64) error
	Sync() error
	// Punch deallocates (discard) or zeroes a byte range.
	Punch(off, n int64, zero bool) error
}

// Blk is a virtio-blk device. With more than one request queue
// (VIRTIO_BLK_F_MQ, 5.2.3) each queue is served on its own worker, with
// its own parsed request and buffers, so queues never wait for each
// other; the backend takes concurrent preadv and pwritev calls.
type Blk struct {
	backend  Backend
	capacity uint64 // sectors
	readOnly bool
	id       [blkIDBytes]byte
	discard  bool
	queues   []blkQueue

	// mem and interrupt are set by Activate and cleared by Reset with
	// every queue's lock held; Process reads them under its own.
	mem       *mem.Memory
	interrupt func(int)

	flushMu    sync.Mutex
	flushError error // once fdatasync failed, every later flush fails
}

// blkQueue is one request queue and what serving it reuses.
type blkQueue struct {
	mu    sync.Mutex
	queue *Queue // nil while the driver has not enabled it
	req   BlkRequest
	iov   *mem.IOVec // the request's guest buffers
}

// BlkOptions configure a disk.
type BlkOptions struct {
	ReadOnly bool
	Serial   string
	Discard  bool // the backend supports Punch
	// Queues is how many request queues the device offers (1 if 0); more
	// than one are offered with VIRTIO_BLK_F_MQ. At most BlkMaxQueues.
	Queues int
}

// NewBlk returns a device over backend of size bytes (a multiple of 512).
func NewBlk(backend Backend, size int64, o BlkOptions) (*Blk, error) {
	if size <= 0 || size%SectorSize != 0 {
		return nil, fmt.Errorf("disk size %d is not a positive multiple of %d", size, SectorSize)
	}
	n := max(o.Queues, 1)
	if n > BlkMaxQueues {
		return nil, fmt.Errorf("%d disk queues: at most %d", n, BlkMaxQueues)
	}
	b := &Blk{backend: backend, capacity: uint64(size) / SectorSize, readOnly: o.ReadOnly, discard: o.Discard && !o.ReadOnly}
	copy(b.id[:], o.Serial)
	b.queues = make([]blkQueue, n)
	for i := range b.queues {
		b.queues[i].req.Data = make([]Segment, 0, blkQueueMax+2)
		b.queues[i].iov = mem.NewIOVec(mem.IOVecMax)
	}
	return b, nil
}

func (b *Blk) Type() uint16               { return TypeBlock }
func (b *Blk) NumQueues() int             { return len(b.queues) }
func (b *Blk) QueueMax() uint16           { return blkQueueMax }
func (b *Blk) WriteConfig(uint64, []byte) {}

func (b *Blk) Features() uint64 {
	f := uint64(BlkFeatureSegMax | BlkFeatureBlkSize | BlkFeatureFlush)
	if b.readOnly {
		f |= BlkFeatureRO
	}
	if b.discard {
		f |= BlkFeatureDiscard | BlkFeatureWriteZeroes
	}
	if len(b.queues) > 1 {
		f |= BlkFeatureMQ
	}
	return f
}

func (b *Blk) ReadConfig(off uint64, data []byte) {
	var c [blkCfgSize]byte
	le := binary.LittleEndian
	le.PutUint64(c[blkCfgCapacity:], b.capacity)
	le.PutUint32(c[blkCfgSegMax:], blkSegMax)
	le.PutUint32(c[blkCfgBlkSize:], SectorSize)
	le.PutUint16(c[blkCfgNumQueues:], uint16(len(b.queues)))
	if b.discard {
		le.PutUint32(c[blkCfgMaxDiscard:], blkMaxDiscard)
		le.PutUint32(c[blkCfgMaxDiscardSeg:], 1)
		le.PutUint32(c[blkCfgDiscardAlign:], 8) // 4 KiB, the file system's block
		le.PutUint32(c[blkCfgMaxWriteZeroes:], blkMaxDiscard)
		le.PutUint32(c[blkCfgMaxWZSeg:], 1)
		c[blkCfgWZMayUnmap] = 1
	}
	clear(data)
	if off < blkCfgSize {
		copy(data, c[off:])
	}
}

// Activate takes the request queues the driver enabled: the first one
// always; the others, offered with VIRTIO_BLK_F_MQ, only if the driver
// negotiated it (without, it uses the first alone, 5.2.2).
func (b *Blk) Activate(m *mem.Memory, features uint64, queues []*Queue, interrupt func(int)) error {
	if len(queues) != len(b.queues) || queues[0] == nil {
		return errors.New("virtio-blk: the request queue is not enabled")
	}
	b.lockAll()
	defer b.unlockAll()
	b.mem, b.interrupt = m, interrupt
	for i := range b.queues {
		if i == 0 || features&BlkFeatureMQ != 0 {
			b.queues[i].queue = queues[i]
		}
	}
	return nil
}

func (b *Blk) Reset() {
	b.lockAll()
	defer b.unlockAll()
	b.mem, b.interrupt = nil, nil
	for i := range b.queues {
		b.queues[i].queue = nil
	}
}

func (b *Blk) lockAll() {
	for i := range b.queues {
		b.queues[i].mu.Lock()
	}
}

func (b *Blk) unlockAll() {
	for i := range b.queues {
		b.queues[i].mu.Unlock()
	}
}

// Process serves every available request on queue qi, then interrupts
// the driver if it asked to be.
func (b *Blk) Process(qi int) error {
	if qi < 0 || qi >= len(b.queues) {
		return nil
	}
	bq := &b.queues[qi]
	bq.mu.Lock()
	defer bq.mu.Unlock()
	q, m := bq.queue, b.mem
	if q == nil {
		return nil
	}
	return q.ServeAvailable(m, qi, b.interrupt, func(chain []Desc) (uint32, error) {
		return b.serve(m, bq, chain), nil
	})
}

// serve parses and executes one request from bq and returns the bytes
// written to the guest (the used length).
func (b *Blk) serve(m *mem.Memory, bq *blkQueue, chain []Desc) uint32 {
	req := &bq.req
	err := ParseBlkRequest(m, chain, b.capacity, req)
	if errors.Is(err, ErrNoStatus) {
		return 0
	}
	var status uint8
	var written uint32
	switch {
	case errors.Is(err, ErrUnsupported):
		status = BlkStatusUnsupp
	case err != nil:
		status = BlkStatusIOErr
	default:
		status, written = b.execute(m, bq, req)
	}
	if m.WriteAt([]byte{status}, req.Status) != nil {
		return 0
	}
	return written + 1
}

func (b *Blk) execute(m *mem.Memory, bq *blkQueue, req *BlkRequest) (status uint8, written uint32) {
	off := int64(req.Sector) * SectorSize
	switch req.Type {
	case BlkTypeIn:
		// Straight from the file into the guest's buffers: one vector
		// read, no copy. A failed read may leave some buffers filled;
		// the used length then counts none of them.
		n, ok := guestBuffers(m, req, bq.iov)
		if !ok || b.backend.ReadvAt(bq.iov, off) != nil {
			return BlkStatusIOErr, 0
		}
		written = n
	case BlkTypeOut:
		if b.readOnly {
			return BlkStatusIOErr, 0
		}
		if _, ok := guestBuffers(m, req, bq.iov); !ok || b.backend.WritevAt(bq.iov, off) != nil {
			return BlkStatusIOErr, 0
		}
	case BlkTypeFlush:
		if b.readOnly {
			return BlkStatusOK, 0
		}
		if b.flush() != nil {
			return BlkStatusIOErr, 0
		}
	case BlkTypeGetID:
		left := blkIDBytes
		for _, s := range req.Data {
			n := min(int(s.Len), left)
			if m.WriteAt(b.id[blkIDBytes-left:blkIDBytes-left+n], s.Addr) != nil {
				return BlkStatusIOErr, written
			}
			written += uint32(n)
			left -= n
			if left == 0 {
				break
			}
		}
	case BlkTypeDiscard, BlkTypeWriteZeroes:
		if !b.discard {
			return BlkStatusUnsupp, 0
		}
		// Every segment is checked before any is applied, so a refused
		// request changes nothing.
		for pass := range 2 {
			for _, s := range req.Data {
				for p := uint64(0); p+blkSegSize <= uint64(s.Len); p += blkSegSize {
					var seg [blkSegSize]byte
					if m.ReadAt(seg[:], s.Addr+p) != nil {
						return BlkStatusIOErr, 0
					}
					sector := binary.LittleEndian.Uint64(seg[0:])
					n := uint64(binary.LittleEndian.Uint32(seg[8:]))
					flags := binary.LittleEndian.Uint32(seg[12:])
					if pass == 0 {
						if st := blkSegmentStatus(req.Type, sector, n, flags, b.capacity); st != BlkStatusOK {
							return st, 0
						}
						continue
					}
					zero := req.Type == BlkTypeWriteZeroes
					if err := b.backend.Punch(int64(sector)*SectorSize, int64(n)*SectorSize, zero); err != nil {
						return BlkStatusIOErr, 0
					}
				}
			}
		}
	}
	return BlkStatusOK, written
}

// blkSegmentStatus judges one discard or write-zeroes segment: UNSUPP
// for a flag the device does not know, or the unmap flag on a discard
// (virtio 1.2, 5.2.6.2); IOERR for a range past the disk or longer than
// the device offered; OK otherwise.
func blkSegmentStatus(typ uint32, sector, n uint64, flags uint32, capacity uint64) uint8 {
	if flags&^blkWriteZeroesUnmap != 0 || typ == BlkTypeDiscard && flags&blkWriteZeroesUnmap != 0 {
		return BlkStatusUnsupp
	}
	if sector > capacity || n > capacity-sector || n > blkMaxDiscard {
		return BlkStatusIOErr
	}
	return BlkStatusOK
}

// flush makes what every queue wrote durable (fdatasync); once that
// failed, every later flush fails (the pages it could not write may have
// been dropped). Flushes from several queues run one at a time.
func (b *Blk) flush() error {
	b.flushMu.Lock()
	defer b.flushMu.Unlock()
	if b.flushError == nil {
		b.flushError = b.backend.Sync()
	}
	return b.flushError
}

// guestBuffers points iov at the request's data segments in guest memory
// (checked there) and returns their total length. A request of more
// segments than one preadv takes (only an indirect table past the
// seg_max offered makes one) fails.
func guestBuffers(m *mem.Memory, req *BlkRequest, iov *mem.IOVec) (uint32, bool) {
	iov.Reset()
	var n uint32
	for _, s := range req.Data {
		if iov.Add(m, s.Addr, uint64(s.Len)) != nil {
			return 0, false
		}
		n += s.Len
	}
	return n, true
}

// FileBackend is a disk image file.
type FileBackend struct {
	f *os.File
}

// OpenDisk opens a disk image for a virtio-blk device and returns the
// backend, its size and the default serial (the file name).
func OpenDisk(path string, readOnly bool) (*FileBackend, int64, string, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, 0, "", err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, "", err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, "", fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() == 0 || st.Size()%SectorSize != 0 {
		f.Close()
		return nil, 0, "", fmt.Errorf("%s: size %d is not a positive multiple of %d", path, st.Size(), SectorSize)
	}
	serial := filepath.Base(path)
	if len(serial) > blkIDBytes {
		serial = serial[:blkIDBytes]
	}
	return &FileBackend{f: f}, st.Size(), serial, nil
}

// ReadvAt reads with one preadv(2), more after a short read.
func (fb *FileBackend) ReadvAt(v *mem.IOVec, off int64) error {
	return v.ReadFullAt(int(fb.f.Fd()), off)
}

// WritevAt writes with one pwritev(2), more after a short write.
func (fb *FileBackend) WritevAt(v *mem.IOVec, off int64) error {
	return v.WriteFullAt(int(fb.f.Fd()), off)
}

func (fb *FileBackend) Sync() error  { return unix.Fdatasync(int(fb.f.Fd())) }
func (fb *FileBackend) Close() error { return fb.f.Close() }

func (fb *FileBackend) Punch(off, n int64, zero bool) error {
	mode := uint32(unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE)
	if zero {
		mode = unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE
	}
	return unix.Fallocate(int(fb.f.Fd()), mode, off, n)
}
