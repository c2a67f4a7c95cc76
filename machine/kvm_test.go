package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/govm/govm/boot"
	"github.com/govm/govm/bus"
	"github.com/govm/govm/bus/bustest"
	"github.com/govm/govm/kvm"
	"github.com/govm/govm/kvm/kvmtest"
)

// These tests run tiny hand-assembled guests on the host's real /dev/kvm.
// They run wherever /dev/kvm works, including hosts whose KVM cannot boot
// Linux (a few hundred real-mode instructions are fine even when each is
// emulated).

// Guest layout: 64 KiB of RAM at 0, code at 0x1000, data at 0x1100, a test
// MMIO device at 0x20000 (segment 0x2000), a test port device at 0x510.
const (
	testRAM      = 0x10000
	testCode     = 0x1000
	testString   = 0x1100
	testResult   = 0x2000
	testMMIOBase = 0x20000
	testPort     = 0x510
)

// realMode is a 16-bit real-mode start at testCode with flat zero-based
// segments.
func realMode() *boot.CPUState {
	code := boot.Segment{Limit: 0xffff, Type: 0xb, Present: true, S: true}
	data := boot.Segment{Limit: 0xffff, Type: 0x3, Present: true, S: true}
	tr := boot.Segment{Limit: 0xffff, Type: 0xb, Present: true}
	return &boot.CPUState{
		RIP: testCode, RSP: 0xf000, RFLAGS: 2, CR0: 0x10,
		GDTLimit: 0xffff, IDTLimit: 0xffff,
		CS: code, DS: data, TR: tr,
	}
}

// asm helpers: real-mode machine code.
var (
	// Writes "hello" to COM1 with rep outsb, stores 0x1234 at testResult,
	// writes 0x5a to MMIO offset 0 and reads MMIO offset 4 into
	// testResult+2, writes word 0xbeef to the test port, then powers off
	// through the ACPI sleep register.
	guestIO = []byte{
		0xba, 0xf8, 0x03, // mov dx, 0x3f8
		0xbe, 0x00, 0x11, // mov si, 0x1100
		0xb9, 0x05, 0x00, // mov cx, 5
		0xf3, 0x6e, // rep outsb
		0xb8, 0x34, 0x12, // mov ax, 0x1234
		0xa3, 0x00, 0x20, // mov [0x2000], ax
		0xb8, 0x00, 0x20, // mov ax, 0x2000
		0x8e, 0xc0, // mov es, ax
		0x26, 0xc6, 0x06, 0x00, 0x00, 0x5a, // mov byte [es:0], 0x5a
		0x26, 0xa0, 0x04, 0x00, // mov al, [es:4]
		0xa2, 0x02, 0x20, // mov [0x2002], al
		0xba, 0x10, 0x05, // mov dx, 0x510
		0xb8, 0xef, 0xbe, // mov ax, 0xbeef
		0xef,             // out dx, ax
		0xba, 0x00, 0x06, // mov dx, 0x600
		0xb0, 0x34, // mov al, 0x34 (SLP_TYP 5, SLP_EN)
		0xee, // out dx, al
		0xf4, // hlt (not reached)
	}
	// Spins forever.
	guestSpin = []byte{0xeb, 0xfe} // jmp $
)

func newTestMachine(t *testing.T, code []byte, cpus int, console *bytes.Buffer, mmio, pio *bustest.Recorder) *Machine {
	t.Helper()
	var mdev, pdev bus.Device
	if mmio != nil {
		mdev = mmio
	}
	if pio != nil {
		pdev = pio
	}
	return tinyMachine(t, code, cpus, console, mdev, pdev)
}

// tinyMachine is a machine for the tiny guests: real mode, testRAM of
// RAM, code at testCode, "hello" at testString, and the given devices at
// testMMIOBase and testPort.
func tinyMachine(t testing.TB, code []byte, cpus int, console *bytes.Buffer, mmio, pio bus.Device) *Machine {
	t.Helper()
	kvmtest.Require(t)
	var mm, pm []mapping
	if mmio != nil {
		mm = []mapping{{Base: testMMIOBase, Size: 0x1000, Name: "test mmio", Dev: mmio}}
	}
	if pio != nil {
		pm = []mapping{{Base: testPort, Size: 2, Name: "test pio", Dev: pio}}
	}
	m, err := New(Config{CPUs: cpus, Console: console, test: tinyGuest(pm, mm)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Memory().WriteAt(code, testCode); err != nil {
		t.Fatal(err)
	}
	if err := m.Memory().WriteAt([]byte("hello"), testString); err != nil {
		t.Fatal(err)
	}
	return m
}

func runWithin(t *testing.T, m *Machine, ctx context.Context, d time.Duration) Result {
	t.Helper()
	done := make(chan Result, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case r := <-done:
		return r
	case <-time.After(d):
		t.Fatalf("VM did not stop within %v", d)
	}
	return Result{}
}

func TestTinyGuestIO(t *testing.T) {
	var console bytes.Buffer
	mmio, pio := &bustest.Recorder{}, &bustest.Recorder{}
	m := newTestMachine(t, guestIO, 1, &console, mmio, pio)
	res := runWithin(t, m, context.Background(), 30*time.Second)
	if res.Reason != StopPoweroff {
		t.Fatalf("stopped with %v (%s) at RIP %#x, want poweroff", res.Reason, res.Detail, res.RIP)
	}
	if console.String() != "hello" {
		t.Errorf("serial output %q, want %q (rep outsb)", console.String(), "hello")
	}
	if v, _ := m.Memory().Uint16(testResult); v != 0x1234 {
		t.Errorf("guest memory write: host sees %#x, want 0x1234", v)
	}
	if len(mmio.Writes) != 1 || mmio.Writes[0].Off != 0 || !bytes.Equal(mmio.Writes[0].Data, []byte{0x5a}) {
		t.Errorf("MMIO writes %+v, want one byte 0x5a at offset 0", mmio.Writes)
	}
	if len(mmio.Reads) != 1 || mmio.Reads[0].Off != 4 {
		t.Errorf("MMIO reads %+v, want one at offset 4", mmio.Reads)
	}
	if v, _ := m.Memory().Uint16(testResult + 2); v&0xff != 0xa4 {
		t.Errorf("MMIO read value reached the guest as %#x, want 0xa4", v&0xff)
	}
	if len(pio.Writes) != 1 || !bytes.Equal(pio.Writes[0].Data, []byte{0xef, 0xbe}) {
		t.Errorf("port writes %+v, want word 0xbeef", pio.Writes)
	}
}

func TestVCPUStopsOnCancel(t *testing.T) {
	m := newTestMachine(t, guestSpin, 1, &bytes.Buffer{}, nil, nil)
	ctx, cancel := context.WithCancelCause(context.Background())
	// While the guest spins, its vCPU's thread carries the vCPU's name.
	var comm string
	time.AfterFunc(300*time.Millisecond, func() {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/comm", m.vcpus[0].tid.Load()))
		comm = strings.TrimSpace(string(b))
		cancel(errors.New("test over"))
	})
	start := time.Now()
	res := runWithin(t, m, ctx, 10*time.Second)
	if res.Reason != StopCanceled || res.Detail != "test over" {
		t.Fatalf("got %v (%s), want canceled", res.Reason, res.Detail)
	}
	if comm != "govm-vcpu0" {
		t.Errorf("vCPU 0's thread is named %q, want govm-vcpu0", comm)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v", d)
	}
}

// An AP that never gets INIT/SIPI sits in KVM_RUN inside the kernel; the
// stop must still reach it.
func TestStopKicksBlockedAP(t *testing.T) {
	var console bytes.Buffer
	m := newTestMachine(t, guestIO, 2, &console, &bustest.Recorder{}, &bustest.Recorder{})
	res := runWithin(t, m, context.Background(), 30*time.Second)
	if res.Reason != StopPoweroff {
		t.Fatalf("got %v (%s)", res.Reason, res.Detail)
	}
}

func TestBadCPUCounts(t *testing.T) {
	kvmtest.Require(t)
	for _, n := range []int{0, -1, 100000} {
		_, err := New(Config{CPUs: n, test: tinyGuest(nil, nil)})
		if !errors.Is(err, ErrCPUs) {
			t.Errorf("CPUs %d: err = %v, want ErrCPUs", n, err)
		}
	}
}

func TestNoKVMDevice(t *testing.T) {
	_, err := New(Config{KVMPath: "/nonexistent/kvm", CPUs: 1, test: tinyGuest(nil, nil)})
	if !errors.Is(err, kvm.ErrNoDevice) {
		t.Fatalf("err = %v, want ErrNoDevice", err)
	}
	if _, err := os.Stat("/nonexistent/kvm"); err == nil {
		t.Skip("path exists")
	}
}
