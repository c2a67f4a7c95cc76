// Package osthread owns what govm does to its own OS threads: it locks a
// goroutine that serves the guest (a vCPU, a device's queues) to its
// thread and names the thread, so top -H, perf, /proc and a benchmark's
// per-thread CPU accounting can tell a vCPU from a NIC (as QEMU's
// "CPU 0/KVM" and Firecracker's "fc_vcpu 0" threads can be told apart).
package osthread

import (
	"fmt"
	"os"
	"runtime"
)

// MaxName is the longest name Linux keeps for a thread: TASK_COMM_LEN (16)
// less the terminating NUL (prctl(2), PR_SET_NAME).
const MaxName = 15

// commPath is the calling thread's name in procfs (proc(5),
// /proc/thread-self, Linux 3.17 and later).
const commPath = "/proc/thread-self/comm"

// Lock locks the calling goroutine to its OS thread for the rest of the
// goroutine's life and names the thread (cut to MaxName bytes). The
// goroutine must not unlock it: when the goroutine ends, its thread ends
// with it instead of going back to Go's pool under a name that no longer
// fits. Naming can fail (no procfs); the thread is locked either way.
func Lock(name string) error {
	runtime.LockOSThread()
	if len(name) > MaxName {
		name = name[:MaxName]
	}
	f, err := os.OpenFile(commPath, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("naming thread %q: %w", name, err)
	}
	defer f.Close()
	if _, err := f.WriteString(name); err != nil {
		return fmt.Errorf("naming thread %q: %w", name, err)
	}
	return nil
}

// Name is the calling thread's name.
func Name() (string, error) {
	b, err := os.ReadFile(commPath)
	if err != nil {
		return "", err
	}
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	return string(b), nil
}
