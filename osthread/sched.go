package osthread

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// BatchProcess puts every thread of the process under SCHED_BATCH
// (sched(7)); threads made later inherit it from the thread that makes
// them. A woken SCHED_BATCH thread does not preempt the thread running on
// its CPU: it waits for that thread's slice to end or for it to block. A
// VMM's I/O threads (NIC loops, the Go runtime's) so batch their work
// where they share a CPU with the vCPUs and the host's own network stack,
// instead of preempting them on every frame; on an idle CPU a woken
// thread runs at once either way (docs/decisions/0001).
// Threads that serve a guest waiting on them go back to SCHED_OTHER
// (Interactive): the vCPUs, so an interrupt for a halted vCPU still
// preempts an I/O thread, and disk workers, which serve one request at a
// time.
func BatchProcess() error { return setProcess(unix.SCHED_BATCH) }

// NormalProcess puts every thread of the process back under SCHED_OTHER,
// undoing BatchProcess.
func NormalProcess() error { return setProcess(unix.SCHED_NORMAL) }

// setProcess sets every thread's policy, keeping each one's nice value.
func setProcess(policy uint32) error {
	tids, err := readTasks()
	if err != nil {
		return err
	}
	for _, tid := range tids {
		if err := setPolicy(tid, policy); err != nil {
			return err
		}
	}
	return nil
}

// readTasks lists the process's threads.
func readTasks() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("listing threads: %w", err)
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// Interactive puts the calling thread under SCHED_NORMAL (SCHED_OTHER),
// Linux's default policy. The goroutine must be locked to its thread
// (Lock).
func Interactive() error { return setPolicy(0, unix.SCHED_NORMAL) }

// Policy is the calling thread's scheduling policy (unix.SCHED_*).
func Policy() (uint32, error) {
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return 0, fmt.Errorf("sched_getattr: %w", err)
	}
	return a.Policy, nil
}

// setPolicy sets thread tid's (0: the caller's) policy, keeping its nice
// value. A thread that ended meanwhile is no error.
func setPolicy(tid int, policy uint32) error {
	a, err := unix.SchedGetAttr(tid, 0)
	if err == unix.ESRCH {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sched_getattr thread %d: %w", tid, err)
	}
	a.Policy, a.Flags = policy, 0
	if err := unix.SchedSetAttr(tid, a, 0); err != nil && err != unix.ESRCH {
		return fmt.Errorf("sched_setattr thread %d: %w", tid, err)
	}
	return nil
}
