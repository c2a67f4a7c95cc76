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
