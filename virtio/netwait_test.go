package virtio

import (
	"slices"
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReadyWaiter: a waiting poll returns once a watched fd is readable,
// and not for one taken out of the set; it reports the fds that are
// ready, as a poll that does not wait does.
func TestReadyWaiter(t *testing.T) {
	efd := func() int {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	signal := func(fd int) {
		if _, err := unix.Write(fd, []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := efd(), efd()
	w, err := newReadyWaiter(a, b)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if err := w.watch(b, false, false); err != nil {
		t.Fatal(err)
	}
	fds := func(evs []unix.EpollEvent) []int {
		var out []int
		for _, ev := range evs {
			out = append(out, int(ev.Fd))
		}
		sort.Ints(out)
		return out
	}
	if evs, err := w.poll(false); err != nil || len(evs) != 0 {
		t.Fatalf("poll with nothing ready: %v, %v", fds(evs), err)
	}
	type result struct {
		fds []int
		err error
	}
	done := make(chan result, 1)
	go func() {
		evs, err := w.poll(true)
		done <- result{fds(evs), err}
	}()
	signal(b) // not watched: must not wake it
	select {
	case r := <-done:
		t.Fatalf("poll returned (%v, %v) for an fd out of the set", r.fds, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	signal(a)
	select {
	case r := <-done:
		if r.err != nil || !slices.Equal(r.fds, []int{a}) {
			t.Fatalf("poll woke with %v, %v; want [%d]", r.fds, r.err, a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("poll did not return for a readable watched fd")
	}
	// Readable already: poll returns at once with both once b is watched.
	if err := w.watch(b, true, false); err != nil {
		t.Fatal(err)
	}
	for _, wait := range []bool{true, false} {
		evs, err := w.poll(wait)
		if want := fds([]unix.EpollEvent{{Fd: int32(a)}, {Fd: int32(b)}}); err != nil || !slices.Equal(fds(evs), want) {
			t.Fatalf("poll(%v): %v, %v; want %v", wait, fds(evs), err, want)
		}
	}
}

// TestReadyWaiterLimit: more fds than a poll reports are refused.
func TestReadyWaiterLimit(t *testing.T) {
	if _, err := newReadyWaiter(0, 1, 2, 3, 4); err == nil {
		t.Fatal("five fds accepted")
	}
}
