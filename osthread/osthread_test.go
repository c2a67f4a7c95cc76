package osthread

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The main goroutine stays on the main thread (as govm's does), so
// TestMain can call Lock there.
func init() { runtime.LockOSThread() }

// mainThread is what Lock did on the main thread, run by TestMain.
var mainThread struct {
	err                error
	onMain             bool
	nameBefore, nameAt string
}

func TestMain(m *testing.M) {
	mainThread.onMain = unix.Gettid() == unix.Getpid()
	mainThread.nameBefore, _ = Name()
	mainThread.err = Lock("govm-net0")
	mainThread.nameAt, _ = Name()
	os.Exit(m.Run())
}

// TestLockMainThread: on the main thread Lock says so and leaves the
// process's name alone.
func TestLockMainThread(t *testing.T) {
	mt := mainThread
	if !mt.onMain {
		t.Fatal("TestMain did not run on the main thread")
	}
	if !errors.Is(mt.err, ErrMainThread) {
		t.Errorf("Lock on the main thread: %v, want ErrMainThread", mt.err)
	}
	if mt.nameAt != mt.nameBefore || mt.nameAt == "govm-net0" {
		t.Errorf("the process was renamed %q (was %q)", mt.nameAt, mt.nameBefore)
	}
}

func TestLock(t *testing.T) {
	tests := []struct{ name, want string }{
		{"govm-vcpu0", "govm-vcpu0"},
		{"govm-blk12-q100-extra", "govm-blk12-q100"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			type result struct {
				tid       int
				name      string
				err, nerr error
			}
			done := make(chan result)
			release := make(chan struct{})
			go func() {
				err := Lock(tt.name)
				name, nerr := Name()
				done <- result{unix.Gettid(), name, err, nerr}
				<-release
			}()
			r := <-done
			if r.err != nil || r.nerr != nil {
				t.Fatal(r.err, r.nerr)
			}
			if r.name != tt.want {
				t.Fatalf("thread name %q, want %q", r.name, tt.want)
			}
			// The process's own view of the thread agrees.
			b, err := os.ReadFile(filepath.Join("/proc/self/task", strconv.Itoa(r.tid), "comm"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(b)); got != tt.want {
				t.Fatalf("/proc/self/task/%d/comm %q, want %q", r.tid, got, tt.want)
			}
			close(release)
		})
	}
}
