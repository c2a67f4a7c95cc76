package virtio

import (
	"testing"
	"time"

	"github.com/govm/govm/mem"
)

// nullPlatform serves the transport's platform calls without a VM.
type nullPlatform struct{}

func (nullPlatform) MapMMIO(uint64, uint64, string, MMIODevice) error { return nil }
func (nullPlatform) UnmapMMIO(uint64, MMIODevice)                     {}
func (nullPlatform) IOEventFD(int, uint64, uint32, bool) error        { return nil }
func (nullPlatform) SignalMSI(uint64, uint32) error                   { return nil }

// resetProbe is a device whose Reset waits for one of its own goroutines
// to raise an interrupt, as virtio-net's receive loop may.
type resetProbe struct {
	t   *testing.T
	irq func(int)
}

func (d *resetProbe) Type() uint16                                            { return TypeNet }
func (d *resetProbe) Features() uint64                                        { return FeatureVersion1 }
func (d *resetProbe) NumQueues() int                                          { return 1 }
func (d *resetProbe) QueueMax() uint16                                        { return 16 }
func (d *resetProbe) ReadConfig(uint64, []byte)                               {}
func (d *resetProbe) WriteConfig(uint64, []byte)                              {}
func (d *resetProbe) Process(int) error                                       { return nil }
func (d *resetProbe) Activate(*mem.Memory, uint64, []*Queue, func(int)) error { return nil }
func (d *resetProbe) Reset() {
	done := make(chan struct{})
	go func() {
		d.irq(0)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		d.t.Error("a device interrupt during reset blocked on the transport")
	}
}

// TestInterruptDuringReset: a reset holds the transport's lock while it
// waits for the device; an interrupt the device raises meanwhile must
// not wait for that lock (it would deadlock).
func TestInterruptDuringReset(t *testing.T) {
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, 1<<16)})
	if err != nil {
		t.Fatal(err)
	}
	d := &resetProbe{t: t}
	p := NewPCIDevice("probe", d, m, nullPlatform{}, 0xc000_0000)
	d.irq = p.interrupt
	p.mu.Lock()
	p.live = true // as after the driver's DRIVER_OK
	p.mu.Unlock()
	p.Close()
}

// msiRecorder counts MSI messages by data.
type msiRecorder struct {
	nullPlatform
	sent []uint32
}

func (r *msiRecorder) SignalMSI(_ uint64, data uint32) error {
	r.sent = append(r.sent, data)
	return nil
}

// TestMSIXPendingDelivered: an interrupt raised while its vector or the
// whole function is masked is held pending, and sent when the mask
// clears, whichever mask it was (PCI 3.0, 6.8.2.3).
func TestMSIXPendingDelivered(t *testing.T) {
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, 1<<16)})
	if err != nil {
		t.Fatal(err)
	}
	ctl := func(p *PCIDevice, v uint16) {
		p.Cfg.Write(p.msix+2, []byte{byte(v), byte(v >> 8)})
	}
	entry := func(p *PCIDevice, v int, data uint32, masked bool) {
		e := make([]byte, msixEntrySize)
		e[0], e[1] = 0x00, 0xe0 // address 0xfee00000
		e[2], e[3] = 0xe0, 0xfe
		e[8], e[9] = byte(data), byte(data>>8)
		if masked {
			e[12] = msixVectorMask
		}
		p.Write(offMSIXTable+uint64(v*msixEntrySize), e)
	}
	tests := []struct {
		name   string
		mask   func(p *PCIDevice) // before the interrupt
		unmask func(p *PCIDevice)
	}{
		{"vector mask", func(p *PCIDevice) { entry(p, 0, 0x41, true) }, func(p *PCIDevice) { entry(p, 0, 0x41, false) }},
		{"function mask", func(p *PCIDevice) { ctl(p, msixCtlEnable|msixCtlFuncMask) }, func(p *PCIDevice) { ctl(p, msixCtlEnable) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plat := &msiRecorder{}
			p := NewPCIDevice("probe", &resetProbe{t: t}, m, plat, 0xc000_0000)
			ctl(p, msixCtlEnable)
			entry(p, 0, 0x41, false)
			p.mu.Lock()
			p.queues[0].vector = 0
			p.live = true
			p.mu.Unlock()

			tt.mask(p)
			p.interrupt(0)
			if len(plat.sent) != 0 {
				t.Fatalf("sent %v while masked", plat.sent)
			}
			var pba [8]byte
			p.Read(offMSIXPBA, pba[:])
			if pba[0]&1 == 0 {
				t.Fatalf("PBA %x: vector 0 not pending", pba)
			}
			tt.unmask(p)
			if len(plat.sent) != 1 || plat.sent[0] != 0x41 {
				t.Fatalf("after unmask sent %v, want [0x41]", plat.sent)
			}
			p.Read(offMSIXPBA, pba[:])
			if pba[0]&1 != 0 {
				t.Errorf("PBA %x: vector 0 still pending", pba)
			}
		})
	}
}
