package machine

import (
	"bytes"
	"errors"
	"testing"

	"github.com/govm/govm/kvm"
)

func TestBusInsert(t *testing.T) {
	b := NewBus("pio", 0xff)
	d := &recorder{}
	if err := b.Insert(0x100, 0x10, "a", d); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		base, size uint64
		want       error
	}{
		{"zero length", 0x200, 0, ErrZeroLength},
		{"same range", 0x100, 0x10, ErrOverlap},
		{"overlaps start", 0xf8, 0x10, ErrOverlap},
		{"overlaps end", 0x10f, 1, ErrOverlap},
		{"inside", 0x104, 2, ErrOverlap},
		{"covers", 0x0, 0x1000, ErrOverlap},
		{"wraps", ^uint64(0) - 1, 4, ErrOverlap},
		{"adjacent below", 0xf0, 0x10, nil},
		{"adjacent above", 0x110, 0x10, nil},
	}
	for _, tt := range tests {
		err := b.Insert(tt.base, tt.size, tt.name, d)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: Insert(%#x, %#x) = %v, want %v", tt.name, tt.base, tt.size, err, tt.want)
		}
	}
}

func TestBusDispatch(t *testing.T) {
	b := NewBus("pio", 0xff)
	a, c := &recorder{}, &recorder{}
	b.Insert(0x3f8, 8, "a", a)
	b.Insert(0x600, 3, "c", c)
	buf := []byte{0, 0}
	if !b.Read(0x3fa, buf) || a.reads[0].off != 2 || buf[0] != 0xa2 {
		t.Fatalf("read reached %+v, buf % x", a.reads, buf)
	}
	// An access straddling the end of a range is not the device's.
	if b.Write(0x3ff, []byte{1, 2}) {
		t.Fatal("straddling write claimed")
	}
	if b.Read(0x500, buf) || !bytes.Equal(buf, []byte{0xff, 0xff}) {
		t.Fatalf("unclaimed read = % x, want ff ff", buf)
	}
	if !b.Write(0x602, []byte{9}) || c.writes[0].off != 2 {
		t.Fatalf("write reached %+v", c.writes)
	}
}

func ioExit(port uint16, write bool, size uint8, data []byte) *kvm.Exit {
	return &kvm.Exit{Reason: kvm.ExitIO, Port: port, Write: write, Size: size, Count: uint32(len(data)) / uint32(size), Data: data}
}

func TestHandleExit(t *testing.T) {
	pio, mmio := NewBus("pio", 0xff), NewBus("mmio", 0)
	dev := &recorder{}
	pio.Insert(0x510, 4, "dev", dev)
	mdev := &recorder{}
	mmio.Insert(0xd000_0000, 0x1000, "mdev", mdev)

	tests := []struct {
		name   string
		exit   *kvm.Exit
		reason StopReason
	}{
		{"out", ioExit(0x510, true, 1, []byte{7}), StopNone},
		{"rep outsw of 3", ioExit(0x510, true, 2, []byte{1, 0, 2, 0, 3, 0}), StopNone},
		{"rep insb of 2", ioExit(0x511, false, 1, make([]byte, 2)), StopNone},
		{"unclaimed in", ioExit(0x80, false, 1, []byte{0}), StopNone},
		{"mmio write", &kvm.Exit{Reason: kvm.ExitMMIO, Addr: 0xd000_0010, Write: true, Size: 4, Count: 1, Data: []byte{1, 2, 3, 4}}, StopNone},
		{"mmio read unclaimed", &kvm.Exit{Reason: kvm.ExitMMIO, Addr: 0xe000_0000, Size: 8, Count: 1, Data: bytes.Repeat([]byte{9}, 8)}, StopNone},
		{"interrupted", &kvm.Exit{Reason: kvm.ExitIntr}, StopNone},
		{"hlt", &kvm.Exit{Reason: kvm.ExitHLT}, StopCrash},
		{"triple fault", &kvm.Exit{Reason: kvm.ExitShutdown}, StopCrash},
		{"system reset", &kvm.Exit{Reason: kvm.ExitSystemEvent, EventType: kvm.SystemEventReset}, StopReboot},
		{"system shutdown", &kvm.Exit{Reason: kvm.ExitSystemEvent, EventType: kvm.SystemEventShutdown}, StopPoweroff},
		{"system crash", &kvm.Exit{Reason: kvm.ExitSystemEvent, EventType: kvm.SystemEventCrash}, StopCrash},
		{"emulation failure", &kvm.Exit{Reason: kvm.ExitInternalError, Suberror: 1}, StopCrash},
		{"entry failure", &kvm.Exit{Reason: kvm.ExitFailEntry, HardwareReason: 0x80000021}, StopCrash},
		{"unknown", &kvm.Exit{Reason: 99}, StopCrash},
	}
	for _, tt := range tests {
		reason, detail := handleExit(tt.exit, pio, mmio)
		if reason != tt.reason {
			t.Errorf("%s: reason %v (%s), want %v", tt.name, reason, detail, tt.reason)
		}
		if reason != StopNone && detail == "" {
			t.Errorf("%s: no detail", tt.name)
		}
	}
	// The string I/O was split into Count accesses of Size bytes each.
	want := []access{{0, []byte{7}}, {0, []byte{1, 0}}, {0, []byte{2, 0}}, {0, []byte{3, 0}}}
	if len(dev.writes) != len(want) {
		t.Fatalf("device saw %d writes, want %d", len(dev.writes), len(want))
	}
	for i, w := range want {
		if dev.writes[i].off != w.off || !bytes.Equal(dev.writes[i].data, w.data) {
			t.Errorf("write %d = %+v, want %+v", i, dev.writes[i], w)
		}
	}
	if len(dev.reads) != 2 || dev.reads[0].off != 1 {
		t.Errorf("rep insb: reads %+v", dev.reads)
	}
	if len(mdev.writes) != 1 || mdev.writes[0].off != 0x10 {
		t.Errorf("mmio writes %+v", mdev.writes)
	}
	if e := tests[5].exit; !bytes.Equal(e.Data, make([]byte, 8)) {
		t.Errorf("unclaimed MMIO read = % x, want zeros", e.Data)
	}
}

func TestRAMRanges(t *testing.T) {
	tests := []struct {
		size    uint64
		want    int
		highLen uint64
		err     bool
	}{
		{512 << 20, 1, 0, false},
		{3 << 30, 1, 0, false},
		{4 << 30, 2, 1 << 30, false},
		{32 << 20, 0, 0, true},
		{(512 << 20) + 4096, 0, 0, true},
	}
	for _, tt := range tests {
		r, err := RAMRanges(tt.size)
		if tt.err {
			if !errors.Is(err, ErrMemSize) {
				t.Errorf("%d: err = %v", tt.size, err)
			}
			continue
		}
		if err != nil || len(r) != tt.want {
			t.Fatalf("%d: %v %v", tt.size, r, err)
		}
		if tt.want == 2 && (r[1].Base != HighRAMStart || r[1].Size != tt.highLen || r[0].Size != PCIHoleStart) {
			t.Errorf("%d: %+v", tt.size, r)
		}
	}
}

func BenchmarkHandleExitPIO(b *testing.B) {
	pio, mmio := NewBus("pio", 0xff), NewBus("mmio", 0)
	pio.Insert(0x510, 4, "dev", nopDevice{})
	e := ioExit(0x510, true, 1, []byte{7})
	b.ReportAllocs()
	for b.Loop() {
		handleExit(e, pio, mmio)
	}
}

type nopDevice struct{}

func (nopDevice) Read(off uint64, data []byte)  {}
func (nopDevice) Write(off uint64, data []byte) {}
