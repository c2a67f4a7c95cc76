package machine

import (
	"bytes"
	"errors"
	"testing"

	"github.com/govm/govm/bus"
	"github.com/govm/govm/bus/bustest"
	"github.com/govm/govm/kvm"
)

func TestHandleExit(t *testing.T) {
	pio, mmio := bus.New("pio", 0xff), bus.New("mmio", 0)
	dev := &bustest.Recorder{}
	pio.Insert(0x510, 4, "dev", dev)
	mdev := &bustest.Recorder{}
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
	want := []bustest.Access{{Off: 0, Data: []byte{7}}, {Off: 0, Data: []byte{1, 0}}, {Off: 0, Data: []byte{2, 0}}, {Off: 0, Data: []byte{3, 0}}}
	if len(dev.Writes) != len(want) {
		t.Fatalf("device saw %d writes, want %d", len(dev.Writes), len(want))
	}
	for i, w := range want {
		if dev.Writes[i].Off != w.Off || !bytes.Equal(dev.Writes[i].Data, w.Data) {
			t.Errorf("write %d = %+v, want %+v", i, dev.Writes[i], w)
		}
	}
	if len(dev.Reads) != 2 || dev.Reads[0].Off != 1 {
		t.Errorf("rep insb: reads %+v", dev.Reads)
	}
	if len(mdev.Writes) != 1 || mdev.Writes[0].Off != 0x10 {
		t.Errorf("mmio writes %+v", mdev.Writes)
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
	pio, mmio := bus.New("pio", 0xff), bus.New("mmio", 0)
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

func ioExit(port uint16, write bool, size uint8, data []byte) *kvm.Exit {
	return &kvm.Exit{Reason: kvm.ExitIO, Port: port, Write: write, Size: size, Count: uint32(len(data)) / uint32(size), Data: data}
}
