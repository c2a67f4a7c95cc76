package confine

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// capsetAllThreads sets the capability sets of every thread: capset(2)
// changes only the calling thread's, and Go runs code on many.
func capsetAllThreads(hdr *unix.CapUserHeader, data *unix.CapUserData) syscall.Errno {
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(data)), 0)
	return e
}
