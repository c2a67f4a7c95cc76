package osthread

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestYielderMaybe(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	var y Yielder
	steps := []struct {
		scheduled bool // Scheduled rather than Maybe
		at        int
		want      bool
	}{
		{false, 0, false}, // the first call starts the clock
		{false, 4, false},
		{false, 5, true},
		{true, 20, false},
		{false, 24, false},
		{false, 25, true},
	}
	for i, s := range steps {
		if s.scheduled {
			y.Scheduled(ms(s.at))
			continue
		}
		// A yield restarts the clock from the real time; put it back on
		// the test's.
		if got := y.Maybe(ms(s.at)); got != s.want {
			t.Fatalf("step %d: Maybe at %d ms = %v, want %v", i, s.at, got, s.want)
		} else if got {
			y.last = ms(s.at)
		}
	}
	if y.Yields != 2 {
		t.Errorf("Yields = %d, want 2", y.Yields)
	}
}

// switches is how many times each of the process's threads but the
// caller's has been switched in (voluntary and involuntary context
// switches, /proc/self/task/TID/status).
func switches(t *testing.T) map[string]uint64 {
	tids, err := readTasks()
	if err != nil {
		t.Fatal(err)
	}
	self := unix.Gettid()
	out := map[string]uint64{}
	for _, id := range tids {
		if id == self {
			continue
		}
		tid := strconv.Itoa(id)
		b, err := os.ReadFile("/proc/self/task/" + tid + "/status")
		if err != nil {
			continue // ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				c, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				out[tid] += c
			}
		}
	}
	return out
}

// switchGrowth is how many switches the threads made between two
// samples; a thread born since counts whole, one ended since not at all.
func switchGrowth(before, after map[string]uint64) uint64 {
	var n uint64
	for tid, c := range after {
		if c > before[tid] {
			n += c - before[tid]
		}
	}
	return n
}

// TestYielderQuietsRuntime: a locked goroutine that only sleeps in short
// system calls makes the runtime's other threads wake again and again
// (the monitor retaking its P), unless a Yielder moves it through the
// scheduler. The runtime is real; only the system call is a stand-in
// (nanosleep for KVM_RUN or a device's read).
func TestYielderQuietsRuntime(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a second")
	}
	run := func(yield bool) uint64 {
		done := make(chan uint64)
		go func() {
			if err := Lock("govm-yieldtest"); err != nil {
				t.Error(err)
			}
			var y Yielder
			before := switches(t)
			end := time.Now().Add(500 * time.Millisecond)
			for now := time.Now(); now.Before(end); now = time.Now() {
				if yield {
					y.Maybe(now)
				}
				ts := unix.Timespec{Nsec: 200_000}
				_ = unix.Nanosleep(&ts, nil)
			}
			done <- switchGrowth(before, switches(t))
		}()
		return <-done
	}
	without, with := run(false), run(true)
	t.Logf("other threads' switches in 500 ms: %d without a Yielder, %d with", without, with)
	if with*3 > without {
		t.Errorf("a Yielder left the runtime's threads %d switches against %d without: want a third or fewer", with, without)
	}
}
