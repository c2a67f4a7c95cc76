package machine

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/osthread"
)

// TestQueueWorkerThreads: the machine names each queue worker's thread
// for its disk and queue, and, where it runs its I/O threads batch, puts
// the worker back under SCHED_NORMAL (decisions/0001).
func TestQueueWorkerThreads(t *testing.T) {
	if err := osthread.BatchProcess(); err != nil {
		t.Skipf("this host refuses SCHED_BATCH: %v", err)
	}
	t.Cleanup(func() {
		if err := osthread.NormalProcess(); err != nil {
			t.Error(err)
		}
	})
	tests := []struct {
		q, queues  int
		batchIO    bool
		wantName   string
		wantPolicy uint32
	}{
		{0, 1, true, "govm-blk3", unix.SCHED_NORMAL},
		{1, 2, true, "govm-blk3-q1", unix.SCHED_NORMAL},
		{0, 1, false, "govm-blk3", unix.SCHED_BATCH},
	}
	for _, tt := range tests {
		p := &devicePlatform{m: &Machine{tune: tuning{batchIO: tt.batchIO}}, thread: "govm-blk3"}
		type seen struct {
			name   string
			policy uint32
			err    error
		}
		ch := make(chan seen, 1)
		p.StartWorker(tt.q, tt.queues, func() {
			b, _ := os.ReadFile("/proc/thread-self/comm")
			pol, err := osthread.Policy()
			ch <- seen{strings.TrimSpace(string(b)), pol, err}
		})
		select {
		case s := <-ch:
			if s.err != nil || s.name != tt.wantName || s.policy != tt.wantPolicy {
				t.Errorf("queue %d of %d, batch %v: thread %q policy %d (%v), want %q policy %d",
					tt.q, tt.queues, tt.batchIO, s.name, s.policy, s.err, tt.wantName, tt.wantPolicy)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the worker never ran")
		}
	}
}
