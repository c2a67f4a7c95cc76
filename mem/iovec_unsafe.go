package mem

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawIOV makes the readv or writev system call on iov (not empty).
// x/sys/unix's Readv and Writev take [][]byte and allocate the iovec array
// past eight buffers; this takes the array as built.
func rawIOV(fd int, trap uintptr, iov []unix.Iovec) (int, unix.Errno) {
	n, _, errno := unix.Syscall(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	return int(n), errno
}

// rawIOVAt makes the preadv or pwritev system call on iov (not empty) at
// byte off. On 64-bit Linux the offset is one register (pos_l; pos_h,
// for 32-bit callers, is ignored).
func rawIOVAt(fd int, trap uintptr, iov []unix.Iovec, off int64) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)), uintptr(off), 0, 0)
	return int(n), errno
}

// trimFront drops the first k bytes of e (k < e.Len).
func trimFront(e *unix.Iovec, k int) {
	e.Base = (*byte)(unsafe.Add(unsafe.Pointer(e.Base), k))
	e.SetLen(int(e.Len) - k)
}

// buffer is the memory e points at.
func buffer(e unix.Iovec) []byte { return unsafe.Slice(e.Base, e.Len) }
