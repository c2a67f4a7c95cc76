// Package osthread owns what govm does to its own OS threads: it locks a
// goroutine that serves the guest from a system call (a vCPU, a disk's
// queue) to its thread and names the thread, so top -H, perf, /proc and a
// benchmark's per-thread CPU accounting can tell a vCPU from a disk queue
// (as QEMU's "CPU 0/KVM" and Firecracker's "fc_vcpu 0" threads can be told
// apart), and it keeps such goroutines from looking stuck to Go's runtime
// (Yielder).
package osthread

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrMainThread is Lock's error on the process's main thread, which it
// locks but does not rename.
var ErrMainThread = errors.New("the main thread keeps the process's name")

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
//
// The process's main thread is locked but keeps its name: its name is the
// process's (ps, pkill, /proc/PID/comm), and a VMM that renamed itself
// "govm-vcpu0" could no longer be found by name. A program that serves the
// guest keeps its main goroutine on the main thread (runtime.LockOSThread
// in an init function) so that no guest-serving goroutine lands there.
func Lock(name string) error {
	runtime.LockOSThread()
	if unix.Gettid() == unix.Getpid() {
		return ErrMainThread
	}
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
