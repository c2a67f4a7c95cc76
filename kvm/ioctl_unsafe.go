package kvm

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file is the only place where Go pointers cross into the kernel. Every
// pointer is converted to uintptr inside the Syscall argument list, which is
// the one form the unsafe rules allow.

// ioctl issues an ioctl whose argument is a pointer, retrying when a
// signal interrupts it (EINTR): only KVM_RUN, which runOnce issues, must
// return to its caller on a signal.
func ioctl(fd int, req uintptr, arg unsafe.Pointer) (int, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if e != unix.EINTR {
			return ioctlResult(r, e)
		}
	}
}

// ioctlVal issues an ioctl whose argument is a plain integer, retrying on
// EINTR as ioctl does.
func ioctlVal(fd int, req, val uintptr) (int, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, val)
		if e != unix.EINTR {
			return ioctlResult(r, e)
		}
	}
}

// ioctlResult is a finished ioctl's return value or error.
func ioctlResult(r uintptr, e unix.Errno) (int, error) {
	if e != 0 {
		return int(r), e
	}
	return int(r), nil
}

// ioctlPtr issues an ioctl whose argument is a pointer to a value of type T.
func ioctlPtr[T any](fd int, req uintptr, arg *T) (int, error) {
	return ioctl(fd, req, unsafe.Pointer(arg))
}

// ioctlBuf issues an ioctl whose argument is a byte buffer holding a
// variable-length kernel structure (a header followed by entries).
func ioctlBuf(fd int, req uintptr, buf []byte) (int, error) {
	return ioctl(fd, req, unsafe.Pointer(unsafe.SliceData(buf)))
}

// sizeOf is the size of a kernel structure mirrored by T.
func sizeOf[T any]() uintptr { var v T; return unsafe.Sizeof(v) }

// runOnce issues KVM_RUN once. EINTR is returned to the caller, which decides
// whether it was a stop request or Go's preemption signal.
func runOnce(fd int) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), reqRun, 0)
	if e != 0 {
		return e
	}
	return nil
}

// hostAddr returns the host virtual address of an mmap'ed buffer. Only
// memory that Go's garbage collector does not manage (mmap'ed guest RAM) is
// passed here, so the address stays valid while the mapping lives.
func hostAddr(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// asBytes views a kernel structure as bytes, for copying into the
// variable-length buffers of packFlex.
func asBytes[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

// fromBytes copies a kernel structure out of a byte buffer.
func fromBytes[T any](b []byte, v *T) {
	copy(asBytes(v), b)
}

// setImmediateExit stores kvm_run.immediate_exit with an atomic 32-bit store
// on the aligned word that holds it (bytes 0-3: request_interrupt_window,
// immediate_exit, padding). govm never sets request_interrupt_window (the
// irqchip is in the kernel), so the other bytes are written as zero.
func setImmediateExit(run []byte, on bool) {
	var w uint32
	if on {
		w = 1 << (8 * runImmediateExit)
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&run[0])), w)
}
