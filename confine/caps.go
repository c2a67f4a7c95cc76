package confine

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// ShareCaps are the capabilities a root govm keeps while it serves a
// share: the guest's file operations then act as root's on the shared
// tree (as virtiofsd's do), which needs these and nothing more.
var ShareCaps = []int{unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH, unix.CAP_FOWNER, unix.CAP_FSETID}

// capWords is how many 32-bit words a version 3 capability set spans.
const capWords = 2

// DropCapabilities leaves every thread of the process only the
// capabilities in keep (effective and permitted; none inheritable). A
// process with none has nothing to drop and returns at once. It needs a
// binary built without cgo (syscall.AllThreadsSyscall).
func DropCapabilities(keep []int) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var cur [capWords]unix.CapUserData
	if err := unix.Capget(&hdr, &cur[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	var want [capWords]unix.CapUserData
	for _, c := range keep {
		w, bit := c/32, uint32(1)<<(c%32)
		want[w].Effective |= bit & cur[w].Permitted
		want[w].Permitted |= bit & cur[w].Permitted
	}
	if cur == want {
		return nil
	}
	e := capsetAllThreads(&hdr, &want[0])
	switch {
	case e == syscall.ENOTSUP:
		return errors.New("dropping capabilities: this govm was built with cgo (build it with CGO_ENABLED=0)")
	case e != 0:
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}
