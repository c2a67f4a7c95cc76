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
