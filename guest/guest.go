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
	"time"

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

// Bounds of DrainConsole: the whole wait, and how long a pipe's reader is
// given to pass on what it read before the console is drained.
const (
	drainLimit = 2 * time.Second
	pipeSettle = 20 * time.Millisecond
)

// consolePath is the kernel's console device.
const consolePath = "/dev/console"

// DrainConsole waits, up to drainLimit, until what the program wrote to
// its standard output and error has reached the console: a line printed
// just before the VM ends is otherwise still in a buffer when it stops.
// A terminal is drained with tcdrain(3) (its tty buffer and the UART
// driver's, which empties on transmit interrupts). A pipe is waited on
// until its reader has taken everything: u-root's init runs uinit with
// its output in a pipe that init copies to each console= device. The
// console is then drained too.
func DrainConsole() {
	drain([]int{1, 2}, consolePath, time.Now().Add(drainLimit))
}

// drain empties fds (terminals or pipes; others are left alone) and, if
// any was a pipe, the terminal at console.
func drain(fds []int, console string, deadline time.Time) {
	piped := false
	for _, fd := range fds {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			continue
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFIFO:
			piped = true
			waitEmpty(fd, unix.TIOCINQ, deadline) // FIONREAD on a pipe
		case unix.S_IFCHR:
			drainTTY(fd, deadline)
		}
	}
	if !piped || console == "" {
		return
	}
	// The reader has read the last bytes; it writes them on at once.
	time.Sleep(pipeSettle)
	fd, err := unix.Open(console, unix.O_WRONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	drainTTY(fd, deadline)
	unix.Close(fd)
}

// drainTTY waits until terminal fd has sent its output: tcdrain (TCSBRK
// with a non-zero argument), again if a signal cut it short, then until
// the output queue reads empty.
func drainTTY(fd int, deadline time.Time) {
	for {
		err := unix.IoctlSetInt(fd, unix.TCSBRK, 1)
		if err == unix.ENOTTY {
			return
		}
		if err != unix.EINTR || time.Now().After(deadline) {
			break
		}
	}
	waitEmpty(fd, unix.TIOCOUTQ, deadline)
}

// waitEmpty polls the byte count ioctl req reports for fd until it is 0,
// fails, or the deadline passes.
func waitEmpty(fd int, req uint, deadline time.Time) {
	for time.Now().Before(deadline) {
		n, err := unix.IoctlGetInt(fd, req)
		if err != nil || n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
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
