package mem

import (
	"errors"
	"io"

	"golang.org/x/sys/unix"
)

// IOVecMax is the most buffers one IOVec holds: the kernel's limit for one
// readv or writev call (UIO_MAXIOV, include/uapi/linux/uio.h).
const IOVecMax = 1024

// ErrIOVecFull is returned by Add when the list already holds IOVecMax
// buffers.
var ErrIOVecFull = errors.New("iovec: more than 1024 buffers")

// IOVec is a reusable scatter-gather list for one readv(2) or writev(2)
// between a file descriptor and guest memory. Guest ranges enter it only
// through Add, which checks them like every other access; host buffers
// (a copied header, say) through AddHost. It holds no guest data itself,
// so a frame or disk request moves with a single copy, done by the host
// kernel. Reset and reuse it: after the first use nothing allocates.
type IOVec struct {
	iov   []unix.Iovec
	bytes uint64
}

// NewIOVec makes a list with room for n buffers without growing.
func NewIOVec(n int) *IOVec {
	return &IOVec{iov: make([]unix.Iovec, 0, min(n, IOVecMax))}
}

// Reset empties the list.
func (v *IOVec) Reset() { v.iov, v.bytes = v.iov[:0], 0 }

// Len is the number of buffers in the list.
func (v *IOVec) Len() int { return len(v.iov) }

// Bytes is the total length of the buffers.
func (v *IOVec) Bytes() uint64 { return v.bytes }

// Add appends the n bytes of guest memory at addr; the range must lie in
// one RAM region. An empty range adds nothing.
func (v *IOVec) Add(m *Memory, addr, n uint64) error {
	b, err := m.Slice(addr, n)
	if err != nil {
		return err
	}
	return v.AddHost(b)
}

// AddHost appends a host buffer, which must stay valid until the I/O is
// done. An empty buffer adds nothing.
func (v *IOVec) AddHost(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if len(v.iov) == IOVecMax {
		return ErrIOVecFull
	}
	v.iov = append(v.iov, unix.Iovec{Base: &b[0]})
	v.iov[len(v.iov)-1].SetLen(len(b))
	v.bytes += uint64(len(b))
	return nil
}

// Readv fills the buffers, in order, from one read of fd (readv(2)); for
// a TAP that is one frame. It retries on EINTR; other errors are the bare unix.Errno.
func (v *IOVec) Readv(fd int) (int, error) { return v.rw(fd, unix.SYS_READV) }

// Writev writes the buffers, in order, with one writev(2) to fd; for a
// TAP that is one frame. It retries on EINTR.
func (v *IOVec) Writev(fd int) (int, error) { return v.rw(fd, unix.SYS_WRITEV) }

func (v *IOVec) rw(fd int, trap uintptr) (int, error) {
	if len(v.iov) == 0 {
		return 0, nil
	}
	for {
		n, errno := rawIOV(fd, trap, v.iov)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno // bare, so EAGAIN costs no allocation
		}
		return n, nil
	}
}

// ReadFullAt fills the buffers, in order, from fd at byte off with
// preadv(2), carrying on after a short read until every byte has come;
// meeting the end of the file is io.ErrUnexpectedEOF. A disk request is
// one call: x/sys/unix's Preadv takes only eight buffers without
// allocating. It spends the list: Reset it before reuse.
func (v *IOVec) ReadFullAt(fd int, off int64) error { return v.rwFullAt(fd, off, unix.SYS_PREADV) }

// WriteFullAt writes the buffers, in order, to fd at byte off with
// pwritev(2), carrying on after a short write. It spends the list.
func (v *IOVec) WriteFullAt(fd int, off int64) error {
	return v.rwFullAt(fd, off, unix.SYS_PWRITEV)
}

func (v *IOVec) rwFullAt(fd int, off int64, trap uintptr) error {
	for len(v.iov) > 0 {
		n, errno := rawIOVAt(fd, trap, v.iov, off)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		off += int64(n)
		v.Advance(n)
	}
	return nil
}

// Advance drops the first n bytes of the list (no more than it holds).
func (v *IOVec) Advance(n int) {
	k := 0
	for k < len(v.iov) && n >= int(v.iov[k].Len) {
		n -= int(v.iov[k].Len)
		k++
	}
	v.DropFront(k)
	if n > 0 && len(v.iov) > 0 {
		trimFront(&v.iov[0], n)
		v.bytes -= uint64(n)
	}
}

// Buffer is the i'th buffer in the list.
func (v *IOVec) Buffer(i int) []byte { return buffer(v.iov[i]) }

// DropFront removes the first k buffers (all if k is larger).
func (v *IOVec) DropFront(k int) {
	k = min(k, len(v.iov))
	for _, e := range v.iov[:k] {
		v.bytes -= uint64(e.Len)
	}
	v.iov = v.iov[:copy(v.iov, v.iov[k:])]
}
