package mem

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mincore reports in vec (one byte per page, bit 0 set if resident) which
// pages of b the host has backed (mincore(2); x/sys/unix has no wrapper).
func mincore(b, vec []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if errno != 0 {
		return errno
	}
	return nil
}

// hostAddr is the host virtual address of b's first byte.
func hostAddr(b []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))
}
