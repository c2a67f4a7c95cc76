// Package guest is the guest side of govm's CI devices, for Go programs
// running inside a govm VM (as u-root's uinit, say). It writes the ports
// through /dev/port, so it needs root in the guest and a kernel with
// CONFIG_DEVPORT, and no assembly.
package guest

import (
	"fmt"
	"os"
)

// Ports, matching govm's devices package.
const (
	ExitPort      = 0xf4
	BootTimerPort = 0x4f0
	devPort       = "/dev/port"
)

func outb(port int64, v byte) error {
	f, err := os.OpenFile(devPort, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("guest: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{v}, port); err != nil {
		return fmt.Errorf("guest: writing port %#x: %w", port, err)
	}
	return nil
}

// Exit ends the VM at once; govm exits with code. It returns only on error.
func Exit(code uint8) error {
	return outb(ExitPort, code)
}

// BootDone tells govm the guest has booted; govm reports the time from its
// start (govm run --metrics).
func BootDone() error {
	return outb(BootTimerPort, 1)
}
