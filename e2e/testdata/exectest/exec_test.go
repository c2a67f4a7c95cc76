// Package exectest is a Go test package the exec end-to-end test builds
// with go test -c and runs inside a govm exec VM: one test passes, one
// fails, as they do on the host.
package exectest

import (
	"os"
	"testing"
)

func TestPass(t *testing.T) {
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Fatal(err)
	}
}

func TestFail(t *testing.T) {
	t.Fatal("this test fails on purpose")
}
