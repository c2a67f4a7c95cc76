package virtio

import (
	"testing"
	"time"
)

// The hostile-driver suite: a virtio-blk device behind the real virtio-PCI
// transport, on fake guest memory, driven by a driver that breaks the
// rules (virtio 1.2, 2.1, 2.7, 4.1.4.3). Each case must end in what the
// spec allows a device to do with a broken driver: refuse the feature set,
// ignore the write, fail the request with an error status or a used
// length of 0, or set DEVICE_NEEDS_RESET. Never a panic, a hang or a
// stuck device: after every case a reset and a correct driver get a
// request served.

const rigBAR = 0xc000_0000

// pciRig is a virtio-blk device on the PCI transport and a driver for it.
type pciRig struct {
	t    *testing.T
	d    *driver
	disk *memDisk
	p    *PCIDevice
}

func newPCIRig(t *testing.T) *pciRig {
	t.Helper()
	d := newDriver(t, 16)
	disk := &memDisk{data: make([]byte, 64*512)}
	blk, err := NewBlk(disk, int64(len(disk.data)), BlkOptions{Serial: "hostile"})
	if err != nil {
		t.Fatal(err)
	}
	p := NewPCIDevice("hostile", blk, d.m, nullPlatform{}, rigBAR)
	t.Cleanup(p.Close)
	return &pciRig{t: t, d: d, disk: disk, p: p}
}

func (r *pciRig) write(off, v uint64, n int) {
	b := make([]byte, n)
	putN(b, v)
	r.p.Write(off, b)
}

func (r *pciRig) read(off uint64, n int) uint64 {
	b := make([]byte, n)
	r.p.Read(off, b)
	return uintN(b)
}

func (r *pciRig) status() uint8 { return uint8(r.read(ccStatus, 1)) }

// negotiate goes through ACKNOWLEDGE, DRIVER, the feature words and
// FEATURES_OK (3.1.1 steps 1-5).
func (r *pciRig) negotiate(features uint64) {
	r.write(ccStatus, StatusAcknowledge, 1)
	r.write(ccStatus, StatusAcknowledge|StatusDriver, 1)
	for sel := uint64(0); sel < 2; sel++ {
		r.write(ccDriverFeatureSel, sel, 4)
		r.write(ccDriverFeature, features>>(32*sel)&0xffffffff, 4)
	}
	r.write(ccStatus, StatusAcknowledge|StatusDriver|StatusFeaturesOK, 1)
}

// setupQueue configures queue 0 and enables it.
func (r *pciRig) setupQueue(size uint16, desc, avail, used uint64) {
	r.write(ccQueueSelect, 0, 2)
	r.write(ccQueueSize, uint64(size), 2)
	for _, a := range []struct {
		off uint64
		v   uint64
	}{{ccQueueDesc, desc}, {ccQueueDriver, avail}, {ccQueueDevice, used}} {
		r.write(a.off, a.v&0xffffffff, 4)
		r.write(a.off+4, a.v>>32, 4)
	}
	r.write(ccQueueEnable, 1, 2)
}

func (r *pciRig) driverOK() {
	r.write(ccStatus, uint64(r.status()|StatusDriverOK), 1)
}

// good is a correct driver's initialization.
func (r *pciRig) good() {
	r.negotiate(FeatureVersion1)
	r.setupQueue(16, descBase, availAt, usedAt)
	r.driverOK()
}

func (r *pciRig) kick() { r.write(offNotify, 0, 2) }

// postRead makes a one-sector read of sector 1 available: header,
// data, status in descriptors 0-2.
func (r *pciRig) postRead() {
	m := r.d.m
	putHeader(m, hdrAt, BlkTypeIn, 1)
	m.PutUint16(statusAt, 0xff)
	r.d.putDesc(descBase, 0, hdrAt, 16, descFlagNext, 1)
	r.d.putDesc(descBase, 1, dataAt, 512, descFlagNext|descFlagWrite, 2)
	r.d.putDesc(descBase, 2, statusAt, 1, descFlagWrite, 0)
	r.d.publish(0)
}

// usedIdx reads the used index as the device writes it: atomically, with
// the flags in one aligned 32-bit word.
func (r *pciRig) usedIdx() uint16 {
	w, _ := r.d.m.LoadUint32(usedAt)
	return uint16(w >> 16)
}

// lastUsedLen is the length of the newest used element.
func (r *pciRig) lastUsedLen() uint32 {
	i := uint64(r.usedIdx()-1) % 16
	v, _ := r.d.m.Uint32(usedAt + usedHeader + usedElem*i + 4)
	return v
}

// waitFor polls cond for up to 2 s (the device works on its own goroutine).
func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return cond()
}

// reset writes status 0 and clears the rings, as a driver re-initializing
// the device does.
func (r *pciRig) reset() {
	r.write(ccStatus, 0, 1)
	if r.status() != 0 {
		r.t.Fatalf("status %#x after reset, want 0", r.status())
	}
	b, _ := r.d.m.Slice(descBase, usedAt+0x1000-descBase)
	clear(b)
	r.d.idx = 0
}

// outcome is what a hostile case must end in.
type outcome int

const (
	served     outcome = iota // the request posted after the steps completes with status OK
	refused                   // FEATURES_OK does not stick
	ignored                   // the device stays inactive: a kick gets nothing used
	needsReset                // DEVICE_NEEDS_RESET is set
	noStatus                  // the request is returned with used length 0
	errStatus                 // the request is returned with an error status
)

func TestHostileDriver(t *testing.T) {
	const notOffered = uint64(1) << 52
	tests := []struct {
		name  string
		steps func(r *pciRig)
		want  outcome
	}{
		{"features never offered", func(r *pciRig) { r.negotiate(FeatureVersion1 | notOffered) }, refused},
		{"no VERSION_1", func(r *pciRig) { r.negotiate(0) }, refused},
		{"status 0xff as the first write", func(r *pciRig) { r.write(ccStatus, 0xff, 1) }, ignored},
		{"DRIVER_OK without FEATURES_OK", func(r *pciRig) {
			r.write(ccStatus, StatusAcknowledge|StatusDriver|StatusDriverOK, 1)
		}, ignored},
		{"queue size 0", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.setupQueue(0, descBase, availAt, usedAt)
			r.driverOK()
		}, needsReset},
		{"queue size not a power of two", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.setupQueue(12, descBase, availAt, usedAt)
			if got := r.read(ccQueueSize, 2); got != 0 {
				t.Errorf("queue size reads %d after writing 12, want 0 (refused)", got)
			}
			r.driverOK()
		}, needsReset},
		{"queue size above the maximum", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.setupQueue(1024, descBase, availAt, usedAt)
			if got := r.read(ccQueueSize, 2); got != 0 {
				t.Errorf("queue size reads %d after writing 1024, want 0 (refused)", got)
			}
			r.driverOK()
		}, needsReset},
		{"queue size reduced to a power of two", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.setupQueue(8, descBase, availAt, usedAt)
			if got := r.read(ccQueueSize, 2); got != 8 {
				t.Errorf("queue size reads %d after writing 8, want 8", got)
			}
		}, ignored},
		{"descriptor ring outside RAM", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.setupQueue(16, ramSize, availAt, usedAt)
			r.driverOK()
		}, needsReset},
		{"used ring on the device's own MMIO BAR", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.setupQueue(16, descBase, availAt, rigBAR)
			r.driverOK()
		}, needsReset},
		{"ring address wraps the 64-bit space", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.setupQueue(16, ^uint64(0)-15, availAt, usedAt)
			r.driverOK()
		}, needsReset},
		{"misaligned descriptor ring", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.setupQueue(16, descBase+8, availAt, usedAt)
			r.driverOK()
		}, needsReset},
		{"queue size changed after DRIVER_OK", func(r *pciRig) {
			r.good()
			r.write(ccQueueSize, 8, 2)
			if got := r.read(ccQueueSize, 2); got != 16 {
				t.Errorf("queue size reads %d after a write past DRIVER_OK, want 16", got)
			}
		}, served},
		{"ring moved after DRIVER_OK", func(r *pciRig) {
			r.good()
			r.write(ccQueueDesc, ramSize, 4)
			if got := r.read(ccQueueDesc, 4); got != descBase {
				t.Errorf("queue desc reads %#x after a write past DRIVER_OK, want %#x", got, descBase)
			}
		}, served},
		{"features rewritten after FEATURES_OK", func(r *pciRig) {
			r.good()
			r.write(ccDriverFeatureSel, 1, 4)
			r.write(ccDriverFeature, 0, 4)
			if got := r.read(ccDriverFeature, 4); got != FeatureVersion1>>32 {
				t.Errorf("driver features high word %#x after a write past FEATURES_OK", got)
			}
		}, served},
		{"kick before DRIVER_OK", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.setupQueue(16, descBase, availAt, usedAt)
			r.kick()
			r.driverOK()
		}, served},
		{"kick after reset", func(r *pciRig) {
			r.good()
			r.reset()
		}, ignored},
		{"kick of a queue that does not exist", func(r *pciRig) {
			r.good()
			r.write(offNotify+5*notifyMult, 5, 2)
			r.write(offNotify+0xfff, 0, 1)
		}, served},
		{"queue select out of range", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.write(ccQueueSelect, 99, 2)
			r.write(ccQueueSize, 8, 2)
			r.write(ccQueueDesc, 0x1234, 4)
			r.write(ccQueueEnable, 1, 2)
			if r.read(ccQueueSize, 2) != 0 || r.read(ccQueueDesc, 4) != 0 {
				t.Error("a queue that does not exist reads back non-zero")
			}
			r.setupQueue(16, descBase, availAt, usedAt)
			r.driverOK()
		}, served},
		{"MSI-X vector beyond the table", func(r *pciRig) {
			r.negotiate(FeatureVersion1)
			r.write(ccConfigMSIX, 0x7ff, 2)
			r.setupQueue(16, descBase, availAt, usedAt)
			r.write(ccQueueMSIX, 0x7fe, 2)
			// A vector the device cannot use reads back as NO_VECTOR
			// (4.1.5.1.2.1), so the driver can tell it was refused.
			if c, q := r.read(ccConfigMSIX, 2), r.read(ccQueueMSIX, 2); c != noVector || q != noVector {
				t.Errorf("config vector %#x, queue vector %#x after out-of-range writes, want %#x", c, q, noVector)
			}
			r.driverOK()
		}, served},
		{"BAR reads and writes off every register", func(r *pciRig) {
			r.good()
			for _, off := range []uint64{lenCommon, offISR + 1, offDevice + lenDevice - 1, offMSIXTable + 0x7ff, offMSIXPBA + 7, BARSize - 1, BARSize + 8} {
				r.read(off, 4)
				r.write(off, 0xffffffff, 4)
			}
		}, served},
		{"avail index jumps past the queue size", func(r *pciRig) {
			r.good()
			_ = r.d.m.StoreUint16(availAt+2, 40)
			r.kick()
		}, needsReset},
		{"avail index goes backwards", func(r *pciRig) {
			r.good()
			_ = r.d.m.StoreUint16(availAt+2, 0xfff0)
			r.kick()
		}, needsReset},
		{"descriptor loop", func(r *pciRig) {
			r.good()
			r.d.putDesc(descBase, 0, hdrAt, 16, descFlagNext, 1)
			r.d.putDesc(descBase, 1, dataAt, 512, descFlagNext|descFlagWrite, 0)
			r.d.publish(0)
			r.kick()
		}, needsReset},
		{"indirect table that loops", func(r *pciRig) {
			r.good()
			const table = 0x8000
			r.d.putDesc(table, 0, hdrAt, 16, descFlagNext, 1)
			r.d.putDesc(table, 1, dataAt, 512, descFlagNext|descFlagWrite, 0)
			r.d.putDesc(descBase, 0, table, 2*descSize, descFlagIndirct, 0)
			r.d.publish(0)
			r.kick()
		}, needsReset},
		{"data length 0xffffffff", func(r *pciRig) {
			r.good()
			putHeader(r.d.m, hdrAt, BlkTypeIn, 0)
			r.d.putDesc(descBase, 0, hdrAt, 16, descFlagNext, 1)
			r.d.putDesc(descBase, 1, dataAt, 0xffffffff, descFlagNext|descFlagWrite, 2)
			r.d.putDesc(descBase, 2, statusAt, 1, descFlagWrite, 0)
			r.d.publish(0)
			r.kick()
		}, needsReset},
		{"status descriptor read-only", func(r *pciRig) {
			r.good()
			putHeader(r.d.m, hdrAt, BlkTypeIn, 0)
			r.d.putDesc(descBase, 0, hdrAt, 16, descFlagNext, 1)
			r.d.putDesc(descBase, 1, statusAt, 1, 0, 0)
			r.d.publish(0)
			r.kick()
		}, noStatus},
		{"read into a zero-length buffer", func(r *pciRig) {
			r.good()
			putHeader(r.d.m, hdrAt, BlkTypeIn, 0)
			r.d.putDesc(descBase, 0, hdrAt, 16, descFlagNext, 1)
			r.d.putDesc(descBase, 1, dataAt, 0, descFlagNext|descFlagWrite, 2)
			r.d.putDesc(descBase, 2, statusAt, 1, descFlagWrite, 0)
			r.d.publish(0)
			r.kick()
		}, errStatus},
		{"read past the disk's end", func(r *pciRig) {
			r.good()
			putHeader(r.d.m, hdrAt, BlkTypeIn, 64)
			r.d.putDesc(descBase, 0, hdrAt, 16, descFlagNext, 1)
			r.d.putDesc(descBase, 1, dataAt, 512, descFlagNext|descFlagWrite, 2)
			r.d.putDesc(descBase, 2, statusAt, 1, descFlagWrite, 0)
			r.d.publish(0)
			r.kick()
		}, errStatus},
		{"same head twice", func(r *pciRig) {
			r.good()
			r.postRead()
			r.d.publish(0)
			r.kick()
			if !waitFor(func() bool { return r.usedIdx() == 2 }) {
				t.Errorf("used idx %d after the same head twice, want 2", r.usedIdx())
			}
		}, served},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newPCIRig(t)
			r.t = t
			tt.steps(r)
			check(t, r, tt.want)
			// Whatever happened, a reset and a correct driver recover.
			r.reset()
			r.good()
			check(t, r, served)
		})
	}
}

// check asserts the device ended in want.
func check(t *testing.T, r *pciRig, want outcome) {
	t.Helper()
	switch want {
	case served:
		if r.status()&StatusDriverOK == 0 {
			t.Fatalf("status %#x: not live", r.status())
		}
		before := r.usedIdx()
		r.postRead()
		r.kick()
		if !waitFor(func() bool { return r.usedIdx() == before+1 }) {
			t.Fatalf("request not served (used idx %d, status %#x)", r.usedIdx(), r.status())
		}
		st, _ := r.d.m.Uint16(statusAt)
		if uint8(st) != BlkStatusOK || r.lastUsedLen() != 513 {
			t.Fatalf("request status %d, used length %d; want OK and 513", uint8(st), r.lastUsedLen())
		}
	case refused:
		if r.status()&StatusFeaturesOK != 0 {
			t.Fatalf("FEATURES_OK stuck (status %#x)", r.status())
		}
	case ignored:
		before := r.usedIdx()
		r.postRead()
		r.kick()
		time.Sleep(50 * time.Millisecond)
		if r.usedIdx() != before {
			t.Fatalf("an inactive device used a buffer (used idx %d)", r.usedIdx())
		}
	case needsReset:
		if !waitFor(func() bool { return r.status()&StatusNeedsReset != 0 }) {
			t.Fatalf("DEVICE_NEEDS_RESET not set (status %#x)", r.status())
		}
	case noStatus, errStatus:
		if !waitFor(func() bool { return r.usedIdx() == 1 }) {
			t.Fatalf("request not returned (used idx %d, status %#x)", r.usedIdx(), r.status())
		}
		st, _ := r.d.m.Uint16(statusAt)
		if want == noStatus && r.lastUsedLen() != 0 {
			t.Fatalf("used length %d, want 0", r.lastUsedLen())
		}
		if want == errStatus && (r.lastUsedLen() != 1 || uint8(st) == BlkStatusOK) {
			t.Fatalf("status %d, used length %d; want an error status and 1", uint8(st), r.lastUsedLen())
		}
		if r.status()&StatusNeedsReset != 0 {
			t.Fatalf("a bad request reset the device (status %#x)", r.status())
		}
	}
}
