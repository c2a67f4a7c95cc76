package guest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/acpi"
)

// TestIsGovmTable checks the guest's test against the tables govm builds:
// the DSDT the guest reads must say govm, and another VMM's must not.
func TestIsGovmTable(t *testing.T) {
	tb, err := acpi.Build(0xe0000, acpi.Config{CPUs: 1, IOAPICAddr: 0xfec00000, LAPICAddr: 0xfee00000, SleepPort: 0x600, SerialPort: 0x3f8, SerialIRQ: 4})
	if err != nil {
		t.Fatal(err)
	}
	dsdt := tb.Table("DSDT")
	if len(dsdt) < 36 || string(dsdt[:4]) != "DSDT" || !IsGovmTable(dsdt) {
		t.Fatalf("govm's DSDT header % x not recognised", dsdt[:36])
	}
	for name, h := range map[string]string{
		"QEMU's":    "DSDT\x00\x10\x00\x00\x01\x00BOCHS BXPC    ",
		"truncated": "DSDT\x00\x10\x00\x00\x01\x00GOV",
		"empty":     "",
	} {
		if IsGovmTable([]byte(h)) {
			t.Errorf("%s header taken for govm's", name)
		}
	}
}

// TestDrainPipe: drain returns only once the pipe's reader has taken all
// that was written (as u-root's init does for uinit's output), and gives
// up at the deadline when nobody reads.
func TestDrainPipe(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readWait time.Duration // -1: nobody reads
		limit    time.Duration
	}{
		{"reader takes it late", 150 * time.Millisecond, 5 * time.Second},
		{"nobody reads", -1, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(p[0])
			defer unix.Close(p[1])
			msg := make([]byte, 3000)
			if _, err := unix.Write(p[1], msg); err != nil {
				t.Fatal(err)
			}
			if tc.readWait >= 0 {
				go func() {
					time.Sleep(tc.readWait)
					buf := make([]byte, len(msg))
					for got := 0; got < len(msg); {
						n, err := unix.Read(p[0], buf)
						if err != nil || n == 0 {
							return
						}
						got += n
					}
				}()
			}
			start := time.Now()
			drain([]int{p[1]}, "", start.Add(tc.limit))
			took := time.Since(start)
			// What the pipe still holds says whether the reader took it:
			// a reader's own count is updated only after its read
			// returns, which can be after drain saw the pipe empty.
			left, err := unix.IoctlGetInt(p[0], unix.TIOCINQ)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.readWait < 0 && took > tc.limit+time.Second:
				t.Fatalf("drain took %v past a %v limit with nobody reading", took, tc.limit)
			case tc.readWait < 0 && left != len(msg):
				t.Fatalf("pipe holds %d of %d bytes with nobody reading", left, len(msg))
			case tc.readWait >= 0 && left != 0:
				t.Fatalf("drain returned after %v with %d of %d bytes unread", took, left, len(msg))
			case tc.readWait >= 0 && took < tc.readWait:
				t.Fatalf("drain returned after %v, before the reader began at %v", took, tc.readWait)
			}
		})
	}
}

// TestDrainTerminal: a pseudo-terminal is drained (and, as the console
// after a pipe, opened by path) without blocking; a regular file is left
// alone.
func TestDrainTerminal(t *testing.T) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slavePath := fmt.Sprintf("/dev/pts/%d", n)
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	go io.Copy(io.Discard, master)
	if _, err := slave.WriteString("line before the exit\n"); err != nil {
		t.Fatal(err)
	}
	file, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	start := time.Now()
	drain([]int{int(slave.Fd()), int(file.Fd()), p[1]}, slavePath, start.Add(5*time.Second))
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("draining a terminal nobody blocks took %v", took)
	}
}
