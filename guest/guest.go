// Package guest is the guest side of govm's CI devices, for Go programs
// running inside a govm VM (as u-root's uinit, say): the exit port, which
// ends the VM with a chosen exit code, and the boot timer. It writes the
// ports with an x86 OUT instruction after ioperm(2), so it needs root (or
// CAP_SYS_RAWIO) in the guest; it does not rely on /dev/port, which many
// kernels (Debian's cloud kernel among them) are built without.
package guest

import (
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Ports, matching govm's devices package.
const (
	ExitPort      = 0xf4
	BootTimerPort = 0x4f0
)

// outb writes one byte to an I/O port (outb_amd64.s).
func outb(port uint16, val uint8)

// writePort grants this thread access to port and writes v to it.
func writePort(port uint16, v uint8) error {
	// ioperm is per thread: stay on the thread that got the permission.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Ioperm(int(port), 1, 1); err != nil {
		return fmt.Errorf("guest: ioperm port %#x: %w", port, err)
	}
	outb(port, v)
	return nil
}

// Exit ends the VM at once; govm exits with code. It returns only on
// error. What the program wrote to its standard output and error before is
// on the console first (DrainConsole).
func Exit(code uint8) error {
	DrainConsole()
	return writePort(ExitPort, code)
}

// DrainConsole waits until the terminals on standard output and error
// have sent everything written to them (tcdrain(3)): a line printed just
// before the VM ends is otherwise still in the tty's buffer, or in the
// UART driver's, waiting for a transmit interrupt, when the VM stops.
// Descriptors that are not terminals are left alone.
func DrainConsole() {
	for _, fd := range []int{1, 2} {
		_ = unix.IoctlSetInt(fd, unix.TCSBRK, 1)
	}
}

// BootDone tells govm the guest has booted; govm reports the time from its
// start (govm run --metrics).
func BootDone() error {
	return writePort(BootTimerPort, 1)
}

// govmOEMID is the OEM ID in the header of every ACPI table govm writes
// (acpi package; ACPI 6.5, 5.2.6 System Description Table Header, offset 10).
const govmOEMID = "GOVM  "

// acpiOEMIDOffset is where the 6-byte OEM ID sits in a table header.
const acpiOEMIDOffset = 10

// OnGovm reports whether the guest runs under govm, from the OEM ID of the
// DSDT the firmware tables carry (/sys/firmware/acpi/tables/DSDT, readable
// by root). The ports this package writes exist only under govm: under
// another VMM nothing answers them, and a nested hypervisor may even fault
// the OUT, so callers that may run elsewhere ask first.
func OnGovm() bool {
	f, err := os.Open("/sys/firmware/acpi/tables/DSDT")
	if err != nil {
		return false
	}
	defer f.Close()
	var h [acpiOEMIDOffset + len(govmOEMID)]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return false
	}
	return IsGovmTable(h[:])
}

// IsGovmTable reports whether an ACPI table (its header is enough) was
// written by govm.
func IsGovmTable(table []byte) bool {
	return len(table) >= acpiOEMIDOffset+len(govmOEMID) &&
		string(table[acpiOEMIDOffset:acpiOEMIDOffset+len(govmOEMID)]) == govmOEMID
}
