// Package kvmtest helps tests that need a working /dev/kvm: they run
// wherever it opens and speaks the API, and skip, saying why, elsewhere.
package kvmtest

import (
	"testing"

	"github.com/govm/govm/kvm"
)

// Available reports why the KVM device at kvm.DevicePath cannot be used,
// or nil where it opens and speaks API version 12.
func Available() error {
	s, err := kvm.Open(kvm.DevicePath)
	if err != nil {
		return err
	}
	return s.Close()
}

// Require skips t where /dev/kvm cannot be used.
func Require(t testing.TB) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("no usable %s: %v", kvm.DevicePath, err)
	}
}
