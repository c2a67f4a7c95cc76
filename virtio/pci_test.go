package virtio

import (
	"encoding/binary"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/bus"
	"github.com/govm/govm/mem"
	"github.com/govm/govm/pci"
)

// nullPlatform serves the transport's platform calls without a VM.
type nullPlatform struct{}

func (nullPlatform) MapMMIO(uint64, uint64, string, bus.Device) error { return nil }
func (nullPlatform) UnmapMMIO(uint64, bus.Device)                     {}
func (nullPlatform) IOEventFD(int, uint64, uint32, bool) error        { return nil }
func (nullPlatform) SignalMSI(uint64, uint32) error                   { return nil }
func (nullPlatform) NewMSIRoute() (MSIRoute, error)                   { return nil, errors.New("no routes") }
func (nullPlatform) SetINTx(uint32, bool)                             {}
func (nullPlatform) StartWorker(_, _ int, serve func())               { go serve() }

// probeDevice is the part of Device the test probes share: one queue of
// 16, no features past VERSION_1, no config space, nothing to activate.
type probeDevice struct{}

func (probeDevice) Type() uint16                                            { return TypeNet }
func (probeDevice) Features() uint64                                        { return FeatureVersion1 }
func (probeDevice) NumQueues() int                                          { return 1 }
func (probeDevice) QueueMax() uint16                                        { return 16 }
func (probeDevice) ReadConfig(uint64, []byte)                               {}
func (probeDevice) WriteConfig(uint64, []byte)                              {}
func (probeDevice) Activate(*mem.Memory, uint64, []*Queue, func(int)) error { return nil }

// resetProbe is a device whose Reset waits for one of its own goroutines
// to raise an interrupt, as virtio-net's receive loop may.
type resetProbe struct {
	probeDevice
	t   *testing.T
	irq func(int)
}

func (d *resetProbe) Process(int) error { return nil }
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
	d.irq = p.irq.queue
	p.mu.Lock()
	p.phase = phaseLive // as after the driver's DRIVER_OK
	p.mu.Unlock()
	p.irq.quiet.Store(false)
	p.Close()
}

// msiRecorder counts MSI messages by data, sent through routes when it
// offers them (withRoutes) or with SignalMSI.
type msiRecorder struct {
	nullPlatform
	withRoutes bool
	sent       []uint32
	signalled  int // messages that went through SignalMSI
	sets       int // route (re)targetings
}

func (r *msiRecorder) SignalMSI(_ uint64, data uint32) error {
	r.sent = append(r.sent, data)
	r.signalled++
	return nil
}

func (r *msiRecorder) NewMSIRoute() (MSIRoute, error) {
	if !r.withRoutes {
		return nil, errors.New("no routes")
	}
	return &fakeRoute{rec: r}, nil
}

type fakeRoute struct {
	rec  *msiRecorder
	data uint32
}

func (f *fakeRoute) Set(_ uint64, data uint32) error { f.data = data; f.rec.sets++; return nil }
func (f *fakeRoute) Fire() error                     { f.rec.sent = append(f.rec.sent, f.data); return nil }
func (f *fakeRoute) Close()                          {}

// TestMSIXPendingDelivered: an interrupt raised while its vector or the
// whole function is masked is held pending, and sent when the mask
// clears, whichever mask it was (PCI 3.0, 6.8.2.3).
func TestMSIXPendingDelivered(t *testing.T) {
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, 1<<16)})
	if err != nil {
		t.Fatal(err)
	}
	ctl := func(p *PCIDevice, v uint16) {
		p.cfg.Write(p.irq.msixCap+2, []byte{byte(v), byte(v >> 8)})
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
			p.irq.setQueueVector(0, 0)
			p.irq.quiet.Store(false)

			tt.mask(p)
			p.irq.queue(0)
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

// TestMSIRoutes: with routes, an interrupt is a Fire on the vector's
// route, targeted once at the table's message and again only when the
// driver rewrites it; without, each message goes through SignalMSI.
func TestMSIRoutes(t *testing.T) {
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, 1<<16)})
	if err != nil {
		t.Fatal(err)
	}
	for _, routes := range []bool{true, false} {
		plat := &msiRecorder{withRoutes: routes}
		probe := &resetProbe{t: t}
		p := NewPCIDevice("probe", probe, m, plat, 0xc000_0000)
		probe.irq = p.irq.queue
		p.cfg.Write(p.irq.msixCap+2, []byte{0, msixCtlEnable >> 8})
		entry := func(data byte) {
			e := make([]byte, msixEntrySize)
			e[2], e[3] = 0xe0, 0xfe
			e[8] = data
			p.Write(offMSIXTable, e)
		}
		entry(0x41)
		p.irq.setQueueVector(0, 0)
		p.irq.quiet.Store(false)
		p.irq.queue(0)
		p.irq.queue(0)
		entry(0x42)
		p.irq.queue(0)
		want := []uint32{0x41, 0x41, 0x42}
		if len(plat.sent) != 3 || plat.sent[0] != want[0] || plat.sent[1] != want[1] || plat.sent[2] != want[2] {
			t.Errorf("routes %v: sent %#x, want %#x", routes, plat.sent, want)
		}
		wantSets, wantSignalled := 2, 0
		if !routes {
			wantSets, wantSignalled = 0, 3
		}
		if plat.sets != wantSets || plat.signalled != wantSignalled {
			t.Errorf("routes %v: %d route sets and %d SignalMSI, want %d and %d", routes, plat.sets, plat.signalled, wantSets, wantSignalled)
		}
		p.Close()
	}
}

// intxRecorder records the INTx line's level.
type intxRecorder struct {
	nullPlatform
	level   map[uint32]bool
	changes int
}

func (r *intxRecorder) SetINTx(gsi uint32, asserted bool) {
	r.level[gsi] = asserted
	r.changes++
}

// TestINTx: without MSI-X the device raises its INTx line with the ISR
// and lowers it when the driver reads the ISR (virtio 1.2, 4.1.4.5); the
// Command register's INTx disable and enabling MSI-X keep it low; a reset
// lowers it.
func TestINTx(t *testing.T) {
	const gsi = 17
	rec := &intxRecorder{level: map[uint32]bool{}}
	d := newDriver(t, 16)
	disk := &memDisk{data: make([]byte, 64*512)}
	blk, err := NewBlk(disk, int64(len(disk.data)), BlkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPCIDevice("intx", blk, d.m, rec, rigBAR)
	defer p.Close()
	p.WireINTx(gsi)
	var cfg [pci.ConfigSize]byte
	p.cfg.Read(0, cfg[:])
	if cfg[pci.InterruptPin] != 1 || cfg[pci.InterruptLine] != gsi {
		t.Fatalf("interrupt pin %d line %d, want INTA and %d", cfg[pci.InterruptPin], cfg[pci.InterruptLine], gsi)
	}
	r := &pciRig{t: t, d: d, disk: disk, p: p}
	r.good()
	isrRead := func() uint8 { return uint8(r.read(offISR, 1)) }
	status := func() bool { return p.cfg.Uint16(pci.Status)&pci.StatusIntx != 0 }

	r.postRead()
	r.kick()
	if !waitFor(func() bool { p.irq.mu.Lock(); defer p.irq.mu.Unlock(); return rec.level[gsi] }) {
		t.Fatal("a completed request did not raise INTx")
	}
	if !status() {
		t.Error("Interrupt Status clear while INTx is asserted")
	}
	if isr := isrRead(); isr&isrQueue == 0 {
		t.Fatalf("ISR %#x, want the queue bit", isr)
	}
	if rec.level[gsi] || status() {
		t.Fatal("reading the ISR did not lower INTx")
	}
	if isr := isrRead(); isr != 0 {
		t.Fatalf("ISR %#x on a second read, want 0", isr)
	}

	// INTx disabled in the Command register: the ISR is set, the line
	// stays low; enabling it again raises the line.
	cmd := p.cfg.Uint16(pci.Command)
	p.cfg.Write(pci.Command, []byte{byte(cmd), byte((cmd | pci.CommandIntxOff) >> 8)})
	r.postRead()
	r.kick()
	if !waitFor(func() bool { return r.usedIdx() == 2 }) {
		t.Fatal("second request not served")
	}
	p.irq.mu.Lock()
	raised := rec.level[gsi]
	p.irq.mu.Unlock()
	if raised {
		t.Fatal("INTx raised while disabled in the Command register")
	}
	p.cfg.Write(pci.Command, []byte{byte(cmd), byte(cmd >> 8)})
	if !rec.level[gsi] {
		t.Fatal("re-enabling INTx with the ISR set did not raise it")
	}
	// A reset lowers it.
	r.reset()
	if rec.level[gsi] {
		t.Fatal("INTx still raised after a reset")
	}

	// With MSI-X enabled the line is never used.
	changes := rec.changes
	r.good()
	ctl := p.irq.msixCap + 2
	p.cfg.Write(ctl, []byte{0, msixCtlEnable >> 8})
	r.postRead()
	r.kick()
	if !waitFor(func() bool { return r.usedIdx() == 1 }) {
		t.Fatal("request with MSI-X not served")
	}
	if rec.changes != changes {
		t.Fatal("INTx changed while MSI-X was enabled")
	}
}

// loopProbe is a Looper with one queue: Loop counts kicks and returns
// errLoopProbe on the third.
type loopProbe struct {
	probeDevice
	kicks, loops, resets atomic.Int32
	running              atomic.Bool
}

var errLoopProbe = errors.New("the driver broke the queue")

func (d *loopProbe) Reset() {
	if d.running.Load() {
		panic("Reset while Loop runs")
	}
	d.resets.Add(1)
}

func (d *loopProbe) Loop(kicks []int, stop int) error {
	d.running.Store(true)
	defer d.running.Store(false)
	d.loops.Add(1)
	pfd := []unix.PollFd{{Fd: int32(stop), Events: unix.POLLIN}, {Fd: int32(kicks[0]), Events: unix.POLLIN}}
	var buf [8]byte
	for {
		if _, err := unix.Poll(pfd, -1); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		if pfd[0].Revents != 0 {
			return nil
		}
		if pfd[1].Revents != 0 {
			_, _ = unix.Read(kicks[0], buf[:])
			if d.kicks.Add(1) == 3 {
				return errLoopProbe
			}
		}
	}
}

// TestLooper: the transport runs a Looper's Loop on one goroutine from
// DRIVER_OK, hands it the queue's kicks, stops it before the device's
// Reset, and marks the device as needing reset when Loop reports the
// driver broke a queue.
func TestLooper(t *testing.T) {
	d := newDriver(t, 16)
	dev := &loopProbe{}
	p := NewPCIDevice("looper", dev, d.m, nullPlatform{}, rigBAR)
	t.Cleanup(p.Close)
	r := &pciRig{t: t, d: d, p: p}
	if p.Threads() != 1 {
		t.Fatalf("Threads %d, want 1", p.Threads())
	}
	r.good()
	r.kick()
	if !waitFor(func() bool { return dev.kicks.Load() == 1 }) {
		t.Fatalf("Loop saw %d kicks, want 1", dev.kicks.Load())
	}
	r.reset()
	if dev.running.Load() || dev.resets.Load() != 1 {
		t.Fatalf("after reset: Loop running %v, %d resets", dev.running.Load(), dev.resets.Load())
	}
	if n := dev.kicks.Load(); n != 1 {
		t.Fatalf("Loop saw %d kicks by the end of the reset, want 1: the reset woke it as a kick", n)
	}
	r.good()
	r.kick()
	if !waitFor(func() bool { return dev.kicks.Load() == 2 }) {
		t.Fatalf("Loop saw %d kicks after re-activation, want 2", dev.kicks.Load())
	}
	if r.status()&StatusNeedsReset != 0 {
		t.Fatal("NEEDS_RESET before the driver broke anything")
	}
	r.kick()
	if !waitFor(func() bool { return r.status()&StatusNeedsReset != 0 }) {
		t.Fatal("Loop's error did not set NEEDS_RESET")
	}
	if n := dev.loops.Load(); n != 2 {
		t.Fatalf("Loop ran %d times, want once per activation (2)", n)
	}
}

// workerRecorder records the workers the transport asks the platform
// to start.
type workerRecorder struct {
	nullPlatform
	mu      sync.Mutex
	started [][2]int // queue, queues
}

func (w *workerRecorder) StartWorker(q, queues int, serve func()) {
	w.mu.Lock()
	w.started = append(w.started, [2]int{q, queues})
	w.mu.Unlock()
	go serve()
}

// TestWorkersFromPlatform: a Processor's queue workers are started through
// the platform, one per enabled queue, which names and schedules their
// threads; a reset stops them and the next activation starts them again.
func TestWorkersFromPlatform(t *testing.T) {
	d := newDriver(t, 16)
	disk := &memDisk{data: make([]byte, 64*512)}
	blk, err := NewBlk(disk, int64(len(disk.data)), BlkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	plat := &workerRecorder{}
	p := NewPCIDevice("workers", blk, d.m, plat, rigBAR)
	t.Cleanup(p.Close)
	r := &pciRig{t: t, d: d, disk: disk, p: p}
	r.good()
	r.postRead()
	r.kick()
	if !waitFor(func() bool { return r.usedIdx() == 1 }) {
		t.Fatal("request not served by the platform's worker")
	}
	r.reset()
	r.good()
	plat.mu.Lock()
	defer plat.mu.Unlock()
	want := [][2]int{{0, 1}, {0, 1}}
	if len(plat.started) != len(want) || plat.started[0] != want[0] || plat.started[1] != want[1] {
		t.Errorf("workers started %v, want %v", plat.started, want)
	}
}

// eventfdRecorder keeps the ioeventfd bindings as KVM would: one per
// address and width, a second assignment refused.
type eventfdRecorder struct {
	nullPlatform
	mu    sync.Mutex
	bound map[uint64]int // address -> eventfd
}

func (r *eventfdRecorder) IOEventFD(fd int, addr uint64, _ uint32, deassign bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if deassign {
		if r.bound[addr] != fd {
			return unix.ENOENT
		}
		delete(r.bound, addr)
		return nil
	}
	if _, ok := r.bound[addr]; ok {
		return unix.EEXIST
	}
	r.bound[addr] = fd
	return nil
}

func (r *eventfdRecorder) get(addr uint64) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fd, ok := r.bound[addr]
	return fd, ok
}

// blockingProbe is a one-queue device whose Process waits until released.
type blockingProbe struct {
	probeDevice
	entered chan struct{}
	release chan struct{}
}

func (d *blockingProbe) Reset() {}
func (d *blockingProbe) Process(int) error {
	d.entered <- struct{}{}
	<-d.release
	return nil
}

// TestMemoryToggleDuringReset: the guest turns memory decoding off and on
// while a reset waits for a busy worker. No notification may stay bound
// to the old eventfd: after re-initialization the queue's notify address
// is bound to the new worker's eventfd (a stale binding took the driver's
// 16-bit kicks for good).
func TestMemoryToggleDuringReset(t *testing.T) {
	d := newDriver(t, 16)
	dev := &blockingProbe{entered: make(chan struct{}, 1), release: make(chan struct{})}
	plat := &eventfdRecorder{bound: map[uint64]int{}}
	p := NewPCIDevice("toggle", dev, d.m, plat, rigBAR)
	t.Cleanup(p.Close)
	cmd := func(v uint16) { p.cfg.Write(pci.Command, []byte{byte(v), byte(v >> 8)}) }
	cmd(pci.CommandMemory)
	r := &pciRig{t: t, d: d, p: p}
	r.good()
	notify := uint64(rigBAR + offNotify)
	if _, ok := plat.get(notify); !ok {
		t.Fatal("no ioeventfd bound once live")
	}
	r.kick()
	<-dev.entered // the worker is busy
	done := make(chan struct{})
	go func() {
		r.write(ccStatus, 0, 1)
		close(done)
	}()
	// The reset waits for the worker: toggle decoding meanwhile.
	time.Sleep(20 * time.Millisecond)
	cmd(0)
	cmd(pci.CommandMemory)
	close(dev.release)
	<-done
	if fd, ok := plat.get(notify); ok {
		t.Fatalf("eventfd %d still bound after the reset", fd)
	}
	dev.release = make(chan struct{})
	r.good()
	fd, ok := plat.get(notify)
	p.mu.Lock()
	want := p.queues[0].efd
	p.mu.Unlock()
	if !ok || fd != want {
		t.Fatalf("after re-initialization notify bound to %d (%v), want the queue's eventfd %d", fd, ok, want)
	}
	close(dev.release)
}

// TestNotifyAfterSequences: whatever the driver did to the Command
// register, the BAR and the device's status before, once it has set the
// device up again with memory decoding on, the queue's notify address is
// bound to the live queue's eventfd and to nothing else, and a kick of
// either width the transport takes (16 bits through KVM, 32 through
// govm's own dispatch) is served.
func TestNotifyAfterSequences(t *testing.T) {
	const moved = rigBAR + 4*BARSize
	type step func(r *pciRig, p *PCIDevice)
	cmd := func(v uint16) step {
		return func(_ *pciRig, p *PCIDevice) { p.cfg.Write(pci.Command, []byte{byte(v), byte(v >> 8)}) }
	}
	bar := func(addr uint64) step {
		return func(_ *pciRig, p *PCIDevice) {
			p.cfg.Write(pci.BAR0, binary.LittleEndian.AppendUint32(nil, uint32(addr)))
			p.cfg.Write(pci.BAR0+4, binary.LittleEndian.AppendUint32(nil, uint32(addr>>32)))
		}
	}
	good := func(r *pciRig, _ *PCIDevice) { r.good() }
	reset := func(r *pciRig, _ *PCIDevice) { r.reset() }
	on, off := cmd(pci.CommandMemory), cmd(0)
	tests := []struct {
		name  string
		steps []step
		at    uint64 // where the BAR ends up
	}{
		{"plain", []step{on, good}, rigBAR},
		{"decode off and on while live", []step{on, good, off, on}, rigBAR},
		{"decode off, reset, decode on", []step{on, good, off, reset, on, good}, rigBAR},
		{"reset twice", []step{on, good, reset, reset, good}, rigBAR},
		{"BAR moved while live", []step{on, good, off, bar(moved), on}, moved},
		{"BAR moved between resets", []step{on, good, reset, off, bar(moved), on, good}, moved},
		{"decode on only after DRIVER_OK", []step{good, on}, rigBAR},
		{"decode toggled before setup", []step{on, off, on, off, on, good}, rigBAR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, 16)
			disk := &memDisk{data: make([]byte, 64*512)}
			blk, err := NewBlk(disk, int64(len(disk.data)), BlkOptions{})
			if err != nil {
				t.Fatal(err)
			}
			plat := &eventfdRecorder{bound: map[uint64]int{}}
			p := NewPCIDevice("notify", blk, d.m, plat, rigBAR)
			t.Cleanup(p.Close)
			r := &pciRig{t: t, d: d, disk: disk, p: p}
			for _, s := range tt.steps {
				s(r, p)
			}
			p.mu.Lock()
			efd := p.queues[0].efd
			p.mu.Unlock()
			plat.mu.Lock()
			bound := maps.Clone(plat.bound)
			plat.mu.Unlock()
			if len(bound) != 1 || bound[tt.at+offNotify] != efd {
				t.Fatalf("bindings %v, want only %#x -> eventfd %d", bound, tt.at+offNotify, efd)
			}
			// A 16-bit kick, as KVM would deliver it: the bound eventfd.
			r.postRead()
			signalEventfd(efd)
			if !waitFor(func() bool { return r.usedIdx() == 1 }) {
				t.Fatal("a 16-bit kick was not served")
			}
			// A 32-bit kick reaches govm's own dispatch.
			r.postRead()
			p.Write(offNotify, []byte{0, 0, 0, 0})
			if !waitFor(func() bool { return r.usedIdx() == 2 }) {
				t.Fatal("a 32-bit kick was not served")
			}
		})
	}
}

func TestAcceptedQueueSize(t *testing.T) {
	for _, c := range []struct{ v, max, want uint16 }{
		{256, 256, 256}, {1, 256, 1}, {128, 256, 128}, {0, 256, 0},
		{12, 256, 0}, {255, 256, 0}, {512, 256, 0}, {0xffff, 256, 0}, {0x8000, 0x8000, 0x8000},
	} {
		if got := acceptedQueueSize(c.v, c.max); got != c.want {
			t.Errorf("acceptedQueueSize(%d, max %d) = %d, want %d", c.v, c.max, got, c.want)
		}
	}
}
