package virtio

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReadyWaiter: wait returns once a watched fd is readable, and not
// for one taken out of the set.
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
	if err := w.watch(b, false); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.wait() }()
	signal(b) // not watched: must not wake it
	select {
	case err := <-done:
		t.Fatalf("wait returned (%v) for an fd out of the set", err)
	case <-time.After(100 * time.Millisecond):
	}
	signal(a)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return for a readable watched fd")
	}
	// Readable already: wait returns at once; watching b again too.
	if err := w.watch(b, true); err != nil {
		t.Fatal(err)
	}
	if err := w.wait(); err != nil {
		t.Fatal(err)
	}
}
