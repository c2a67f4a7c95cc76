package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/govm/govm/mem"
)

// virtio-fs (virtio 1.2, 5.11): FUSE requests on virtqueues. The device
// model only moves requests: it hands the server bounds-checked slices of
// the guest's buffers and returns the reply's length; the file system
// lives behind FSServer (package share).
const (
	TypeFS = 26

	// FSTagMax is the tag field's size; a shorter tag is NUL-padded
	// (5.11.4).
	FSTagMax = 36
	// FSMaxRequestQueues bounds the request queues a share offers.
	FSMaxRequestQueues = 16

	fsQueueMax       = 256
	fsHiprioQueue    = 0 // FORGET and INTERRUPT go here (5.11.2)
	fsCfgNumRequests = FSTagMax
	fsCfgSize        = FSTagMax + 4 + 4 // tag, num_request_queues, notify_buf_size

	// FUSE header sizes (include/uapi/linux/fuse.h): a request starts
	// with fuse_in_header {len u32, opcode u32, unique u64, ...} and a
	// reply with fuse_out_header {len u32, error i32, unique u64}.
	fuseInHeaderSize  = 40
	fuseOutHeaderSize = 16
	fuseUniqueOffset  = 8
	fuseEIO           = 0xffff_fffb // -EIO as the header's s32 error
)

// FSServer serves one FUSE request: it reads the request from the
// readable buffers in, writes the reply into out and returns the reply's
// length (0 for a request that has none, like FORGET). An error means
// the request could not be served at all; the device then answers EIO.
// Serve is called from several queues' workers at once.
type FSServer interface {
	Serve(in, out [][]byte) (int, error)
}

// FS is a virtio-fs device: one hiprio queue and Queues request queues,
// each served on its own worker.
type FS struct {
	tag    [FSTagMax]byte
	server FSServer
	queues []fsQueue

	mem       *mem.Memory
	interrupt func(int)
}

// fsQueue is one queue and the buffers serving it reuses.
type fsQueue struct {
	mu       sync.Mutex
	queue    *Queue
	in, out  [][]byte // the request's readable and writable buffers
	outBytes uint64   // the writable buffers' total length
}

var errFSDirection = errors.New("virtio-fs: readable buffer after a writable one")

// ErrFSTag is returned for a tag that is empty or too long.
var ErrFSTag = errors.New("virtio-fs: tag must be 1 to 36 bytes")

// NewFS returns a virtio-fs device announcing tag, serving requests with
// server on requestQueues request queues (at least one).
func NewFS(tag string, server FSServer, requestQueues int) (*FS, error) {
	if len(tag) == 0 || len(tag) > FSTagMax {
		return nil, fmt.Errorf("%w: %q", ErrFSTag, tag)
	}
	n := max(requestQueues, 1)
	if n > FSMaxRequestQueues {
		return nil, fmt.Errorf("virtio-fs: %d request queues: at most %d", n, FSMaxRequestQueues)
	}
	f := &FS{server: server, queues: make([]fsQueue, 1+n)}
	copy(f.tag[:], tag)
	for i := range f.queues {
		q := &f.queues[i]
		q.in, q.out = make([][]byte, 0, fsQueueMax), make([][]byte, 0, fsQueueMax)
	}
	return f, nil
}

func (f *FS) Type() uint16               { return TypeFS }
func (f *FS) Features() uint64           { return 0 }
func (f *FS) NumQueues() int             { return len(f.queues) }
func (f *FS) QueueMax() uint16           { return fsQueueMax }
func (f *FS) WriteConfig(uint64, []byte) {}

func (f *FS) ReadConfig(off uint64, data []byte) {
	var c [fsCfgSize]byte
	copy(c[:], f.tag[:])
	binary.LittleEndian.PutUint32(c[fsCfgNumRequests:], uint32(len(f.queues)-1))
	clear(data)
	if off < fsCfgSize {
		copy(data, c[off:])
	}
}

// Activate takes the queues the driver enabled; a driver may use fewer
// request queues than offered (older kernels use the first alone).
func (f *FS) Activate(m *mem.Memory, features uint64, queues []*Queue, interrupt func(int)) error {
	if len(queues) != len(f.queues) || queues[1] == nil {
		return errors.New("virtio-fs: the first request queue is not enabled")
	}
	f.lockAll()
	defer f.unlockAll()
	f.mem, f.interrupt = m, interrupt
	for i := range f.queues {
		f.queues[i].queue = queues[i]
	}
	return nil
}

func (f *FS) Reset() {
	f.lockAll()
	defer f.unlockAll()
	f.mem, f.interrupt = nil, nil
	for i := range f.queues {
		f.queues[i].queue = nil
	}
}

func (f *FS) lockAll() {
	for i := range f.queues {
		f.queues[i].mu.Lock()
	}
}

func (f *FS) unlockAll() {
	for i := range f.queues {
		f.queues[i].mu.Unlock()
	}
}

// Process serves every available request on queue qi, then interrupts the
// driver if it asked to be.
func (f *FS) Process(qi int) error {
	if qi < 0 || qi >= len(f.queues) {
		return nil
	}
	fq := &f.queues[qi]
	fq.mu.Lock()
	defer fq.mu.Unlock()
	q, m := fq.queue, f.mem
	if q == nil {
		return nil
	}
	return q.ServeAvailable(m, qi, f.interrupt, func(chain []Desc) (uint32, error) {
		return f.serve(m, fq, chain), nil
	})
}

// serve hands one chain to the server and returns the used length. A
// chain that cannot carry a request and its reply (buffers out of guest
// RAM or in the wrong order, no room for a reply header) is returned
// unanswered; a request the server cannot take is answered with EIO.
func (f *FS) serve(m *mem.Memory, fq *fsQueue, chain []Desc) uint32 {
	if fsBuffers(m, chain, fq) != nil || fq.outBytes < fuseOutHeaderSize {
		return 0
	}
	n, err := f.server.Serve(fq.in, fq.out)
	if err != nil || n < 0 || uint64(n) > fq.outBytes {
		return fsErrorReply(fq)
	}
	return uint32(n)
}

// fsBuffers splits a chain into its readable and writable guest buffers
// (readable first, 2.7.4.2), each checked against guest RAM.
func fsBuffers(m *mem.Memory, chain []Desc, fq *fsQueue) error {
	fq.in, fq.out, fq.outBytes = fq.in[:0], fq.out[:0], 0
	seenWrite := false
	for _, d := range chain {
		if !d.Write && seenWrite {
			return errFSDirection
		}
		seenWrite = seenWrite || d.Write
		b, err := m.Slice(d.Addr, uint64(d.Len))
		switch {
		case err != nil:
			return err
		case len(b) == 0:
		case d.Write:
			fq.out = append(fq.out, b)
			fq.outBytes += uint64(len(b))
		default:
			fq.in = append(fq.in, b)
		}
	}
	return nil
}

// fsErrorReply writes an EIO reply for the request in fq.in, if it has a
// request header, into fq.out (which has room for one) and returns its
// length.
func fsErrorReply(fq *fsQueue) uint32 {
	var in [fuseInHeaderSize]byte
	if gather(in[:], fq.in) < fuseInHeaderSize {
		return 0
	}
	var out [fuseOutHeaderSize]byte
	binary.LittleEndian.PutUint32(out[0:], fuseOutHeaderSize)
	binary.LittleEndian.PutUint32(out[4:], uint32(fuseEIO))
	copy(out[fuseUniqueOffset:], in[fuseUniqueOffset:fuseUniqueOffset+8])
	scatter(fq.out, out[:])
	return fuseOutHeaderSize
}

// gather copies the start of bufs into dst and returns the bytes copied.
func gather(dst []byte, bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += copy(dst[n:], b)
	}
	return n
}

// scatter copies src into the start of bufs and returns the bytes copied.
func scatter(bufs [][]byte, src []byte) int {
	n := 0
	for _, b := range bufs {
		n += copy(b, src[n:])
	}
	return n
}
