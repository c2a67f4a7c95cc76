package virtio

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// readyWaiter waits for any of a few file descriptors by parking the
// goroutine in Go's network poller, not in a blocking poll(2).
//
// A device loop is one goroutine that never reschedules: it only makes
// system calls. Go's monitor (sysmon) sees such a goroutine's P run the
// same goroutine for more than 10 ms and from then on takes the P back
// whenever it catches the goroutine in a system call, hands it to an idle
// thread that finds nothing to do, and polls again 20 us later: on every
// wake of the loop, two more threads wake (an execution trace of a nested
// transfer showed the retake 0.3 ms into each poll). Parked in the poller
// the goroutine holds no P and goes through the scheduler on each wake, so
// the monitor leaves it alone. BenchmarkNetReceive: 7.4-8.8 us a frame
// against 9.8-10.9 us with poll(2), the loop locked to its thread in both.
//
// The fds sit in an epoll set of their own (level-triggered), whose fd the
// runtime's poller watches.
type readyWaiter struct {
	epfd    int
	f       *os.File // owns epfd
	rc      syscall.RawConn
	events  [4]unix.EpollEvent
	ready   func(uintptr) bool // made once: wait allocates nothing
	err     error              // epoll_wait's failure, for wait to return
	watched map[int]bool
}

// newReadyWaiter makes a waiter watching fds for input.
func newReadyWaiter(fds ...int) (*readyWaiter, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	w := &readyWaiter{epfd: epfd, watched: map[int]bool{}}
	for _, fd := range fds {
		if err := w.watch(fd, true); err != nil {
			unix.Close(epfd)
			return nil, err
		}
	}
	// Non-blocking, so os.NewFile hands the fd to the runtime's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll fd: %w", err)
	}
	w.f = os.NewFile(uintptr(epfd), "epoll")
	if w.rc, err = w.f.SyscallConn(); err != nil {
		w.f.Close()
		return nil, err
	}
	w.ready = func(uintptr) bool {
		n, err := unix.EpollWait(w.epfd, w.events[:], 0)
		if err != nil && !errors.Is(err, unix.EINTR) {
			w.err = fmt.Errorf("epoll_wait: %w", err)
			return true
		}
		return n > 0
	}
	return w, nil
}

// watch adds fd to the set (on) or keeps it there unwatched (off).
func (w *readyWaiter) watch(fd int, on bool) error {
	was, known := w.watched[fd]
	if known && was == on {
		return nil
	}
	ev := unix.EpollEvent{Fd: int32(fd)}
	if on {
		ev.Events = unix.EPOLLIN
	}
	op := unix.EPOLL_CTL_MOD
	if !known {
		op = unix.EPOLL_CTL_ADD
	}
	if err := unix.EpollCtl(w.epfd, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl fd %d: %w", fd, err)
	}
	w.watched[fd] = on
	return nil
}

// wait parks the goroutine until a watched fd is readable or has failed
// (the caller's poll(2) with no timeout then says which and how). An error
// is the epoll set's own: the caller cannot wait any more.
func (w *readyWaiter) wait() error {
	if err := w.rc.Read(w.ready); err != nil {
		return err
	}
	return w.err
}

// close releases the epoll set; the watched fds stay open.
func (w *readyWaiter) close() error { return w.f.Close() }
