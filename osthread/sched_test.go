package osthread

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestBatchProcess: every thread is SCHED_BATCH after BatchProcess, a
// thread made later too, and Interactive takes the caller back to
// SCHED_OTHER. It puts every thread back under SCHED_OTHER when done.
func TestBatchProcess(t *testing.T) {
	if err := BatchProcess(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := NormalProcess(); err != nil {
			t.Error(err)
		}
	})
	if p, err := Policy(); err != nil || p != unix.SCHED_BATCH {
		t.Fatalf("after BatchProcess the test's thread has policy %d (%v), want SCHED_BATCH", p, err)
	}
	type res struct {
		before, after uint32
		err           error
	}
	done := make(chan res)
	go func() {
		Lock("govm-schedtest")
		var r res
		if r.before, r.err = Policy(); r.err == nil {
			if r.err = Interactive(); r.err == nil {
				r.after, r.err = Policy()
			}
		}
		done <- r
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.before != unix.SCHED_BATCH || r.after != unix.SCHED_NORMAL {
		t.Fatalf("a locked goroutine's thread: policy %d, then %d after Interactive; want SCHED_BATCH, then SCHED_OTHER", r.before, r.after)
	}
}
