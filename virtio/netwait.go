package virtio

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// readyWaiter finds which of a few file descriptors are ready, and waits
// for one by parking the goroutine in Go's network poller, not in a
// blocking poll(2).
//
// A device loop blocked in poll(2) holds its P, and Go's monitor
// (sysmon) takes the P back from a goroutine that has run for 10 ms
// without rescheduling, waking idle threads on each of the loop's
// wakes. Parked in the poller the goroutine holds no P and goes through
// the scheduler on each wake, so the monitor leaves it alone
// (docs/decisions/0004-nic-loop-in-netpoller.md).
//
// The fds sit in an epoll set of their own (level-triggered), whose fd the
// runtime's poller watches. One epoll_wait both finds what woke the loop
// and, with nothing ready, tells the poller to park it.
type readyWaiter struct {
	epfd    int
	f       *os.File // owns epfd
	rc      syscall.RawConn
	events  [maxReadyFds]unix.EpollEvent
	n       int                // events[:n] are the last poll's
	looks   int                // epoll_waits in the last poll
	ready   func(uintptr) bool // made once: poll allocates nothing
	err     error              // epoll_wait's failure, for poll to return
	watched map[int]uint32     // fd -> the events watched
}

// maxReadyFds is how many ready fds one poll reports; a loop watches no
// more (a stop, two kicks, a backend).
const maxReadyFds = 4

// newReadyWaiter makes a waiter watching fds for input.
func newReadyWaiter(fds ...int) (*readyWaiter, error) {
	if len(fds) > maxReadyFds {
		return nil, fmt.Errorf("readyWaiter: %d fds, at most %d", len(fds), maxReadyFds)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	w := &readyWaiter{epfd: epfd, watched: map[int]uint32{}}
	for _, fd := range fds {
		if err := w.watch(fd, true, false); err != nil {
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
		w.look()
		return w.n > 0 || w.err != nil
	}
	return w, nil
}

// look is one epoll_wait that does not wait.
func (w *readyWaiter) look() {
	w.n = 0
	w.looks++
	n, err := unix.EpollWait(w.epfd, w.events[:], 0)
	switch {
	case err == nil:
		w.n = n
	case !errors.Is(err, unix.EINTR):
		w.err = fmt.Errorf("epoll_wait: %w", err)
	}
}

// watch adds fd to the set for input (in), room to write (out), both or
// neither: an fd watched for neither is reported only for an error or a
// hang-up.
func (w *readyWaiter) watch(fd int, in, out bool) error {
	var events uint32
	if in {
		events |= unix.EPOLLIN
	}
	if out {
		events |= unix.EPOLLOUT
	}
	was, known := w.watched[fd]
	if known && was == events {
		return nil
	}
	ev := unix.EpollEvent{Fd: int32(fd), Events: events}
	op := unix.EPOLL_CTL_MOD
	if !known {
		op = unix.EPOLL_CTL_ADD
	}
	if err := unix.EpollCtl(w.epfd, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl fd %d: %w", fd, err)
	}
	w.watched[fd] = events
	return nil
}

// poll reports the watched fds that are ready (readable, failed or hung
// up; at most one event each). With wait it parks the goroutine until one
// is; without, it returns at once, with none if none is. The slice is the
// waiter's and good until the next poll. An error is the epoll set's own:
// the caller cannot wait any more.
func (w *readyWaiter) poll(wait bool) ([]unix.EpollEvent, error) {
	w.looks = 0
	if !wait {
		w.look()
	} else if err := w.rc.Read(w.ready); err != nil {
		return nil, err
	}
	if w.err != nil {
		return nil, w.err
	}
	return w.events[:w.n], nil
}

// parked reports whether the last poll parked the goroutine, which took
// it through Go's scheduler: the poller looks once before parking and
// again on each wake.
func (w *readyWaiter) parked() bool { return w.looks > 1 }

// close releases the epoll set; the watched fds stay open.
func (w *readyWaiter) close() error { return w.f.Close() }
