package main

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/confine"
)

// forbiddenCallEnv, set to any value, makes govm open a socket once it is
// confined: a call the allow-list forbids, for the tests that show a
// forbidden call kills govm with confine.ExitKilled (never set it
// otherwise).
const forbiddenCallEnv = "GOVM_TEST_FORBIDDEN_CALL"

// confineVM narrows what govm may do once its VM is built and before the
// guest runs: as root, the capabilities setup needed go (those a share's
// file operations need stay while there are shares); then the seccomp
// allow-list goes on every thread, unless --seccomp=off.
func confineVM(mode confine.Mode, shares int, stderr io.Writer) error {
	var keep []int
	if shares > 0 {
		keep = confine.ShareCaps
	}
	if err := confine.DropCapabilities(keep); err != nil {
		fmt.Fprintf(stderr, "govm: warning: %v\n", err)
	}
	if err := confine.Install(mode); err != nil {
		return fmt.Errorf("--seccomp=%s: %w (--seccomp=off runs without the filter)", mode, err)
	}
	if os.Getenv(forbiddenCallEnv) != "" {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		fmt.Fprintf(stderr, "govm: %s: socket was not stopped (fd %d, %v)\n", forbiddenCallEnv, fd, err)
	}
	return nil
}

// seccompFlag is --seccomp's value, checked when the flag is parsed.
type seccompFlag struct{ mode confine.Mode }

func (f *seccompFlag) String() string { return f.mode.String() }
func (f *seccompFlag) Type() string   { return "on|log|off" }
func (f *seccompFlag) Set(s string) error {
	m, err := confine.ParseMode(s)
	if err != nil {
		return err
	}
	f.mode = m
	return nil
}
