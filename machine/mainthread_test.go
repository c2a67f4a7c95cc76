package machine

import "runtime"

// The test binary keeps its main goroutine on the main thread, as govm
// does (cmd/govm's init), so the goroutines whose threads the tests
// expect named never land on the main thread, which osthread.Lock leaves
// with the process's name.
func init() { runtime.LockOSThread() }
