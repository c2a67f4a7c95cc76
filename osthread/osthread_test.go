package osthread

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

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
