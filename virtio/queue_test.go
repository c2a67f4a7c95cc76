package virtio

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/govm/govm/mem"
)

// driver is a test driver: it lays out a split queue in fake guest memory
// and posts chains the way a guest driver would.
type driver struct {
	t    testing.TB
	m    *mem.Memory
	q    Queue
	next uint16 // next free descriptor
	idx  uint16 // avail idx
	data uint64 // next free data address
}

const (
	ramSize  = 1 << 20
	descBase = 0x1000
	availAt  = 0x2000
	usedAt   = 0x3000
	dataBase = 0x10000
)

func newDriver(t testing.TB, size uint16) *driver {
	t.Helper()
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, ramSize)})
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{t: t, m: m, data: dataBase}
	d.q = Queue{Size: size, Desc: descBase, Avail: availAt, Used: usedAt}
	if err := d.q.Validate(m, 256); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d *driver) putDesc(table uint64, i uint16, addr uint64, length uint32, flags, next uint16) {
	writeDesc(d.m, table, i, addr, length, flags, next)
}

// writeDesc writes descriptor i of the table at table in m.
func writeDesc(m *mem.Memory, table uint64, i uint16, addr uint64, length uint32, flags, next uint16) {
	b, _ := m.Slice(table+uint64(i)*descSize, descSize)
	le := binary.LittleEndian
	le.PutUint64(b, addr)
	le.PutUint32(b[8:], length)
	le.PutUint16(b[12:], flags)
	le.PutUint16(b[14:], next)
}

// buf is a buffer to chain: its length and direction.
type buf struct {
	len   uint32
	write bool
}

// post writes a chain of bufs and makes it available; returns the head.
func (d *driver) post(bufs ...buf) uint16 {
	head := d.next
	for i, b := range bufs {
		idx := d.next
		d.next = (d.next + 1) % d.q.Size
		var flags uint16
		if b.write {
			flags |= descFlagWrite
		}
		if i < len(bufs)-1 {
			flags |= descFlagNext
		}
		d.putDesc(descBase, idx, d.data, b.len, flags, d.next)
		d.data += uint64(b.len)
	}
	d.publish(head)
	return head
}

func (d *driver) publish(head uint16) {
	d.m.PutUint16(availAt+availHeader+2*uint64(d.idx%d.q.Size), head)
	d.idx++
	_ = d.m.StoreUint16(availAt+2, d.idx) // a driver publishes with a release store (2.7.13)
}

func TestPopPushRoundTrip(t *testing.T) {
	d := newDriver(t, 8)
	h := d.post(buf{16, false}, buf{512, true}, buf{1, true})
	head, chain, ok, err := d.q.Pop(d.m)
	if err != nil || !ok || head != h || len(chain) != 3 {
		t.Fatalf("Pop = %d %v %v %v", head, chain, ok, err)
	}
	if chain[0].Write || !chain[1].Write || chain[1].Len != 512 {
		t.Fatalf("chain %+v", chain)
	}
	if _, _, ok, _ := d.q.Pop(d.m); ok {
		t.Fatal("second Pop found a chain")
	}
	if err := d.q.PushUsed(d.m, head, 513); err != nil {
		t.Fatal(err)
	}
	id, _ := d.m.Uint32(usedAt + usedHeader)
	n, _ := d.m.Uint32(usedAt + usedHeader + 4)
	idx, _ := d.m.Uint16(usedAt + 2)
	if id != uint32(h) || n != 513 || idx != 1 {
		t.Fatalf("used elem %d/%d idx %d", id, n, idx)
	}
}

func TestIndirect(t *testing.T) {
	d := newDriver(t, 8)
	const table = 0x8000
	d.putDesc(table, 0, 0x9000, 16, descFlagNext, 1)
	d.putDesc(table, 1, 0x9100, 4096, descFlagNext|descFlagWrite, 2)
	d.putDesc(table, 2, 0xa100, 1, descFlagWrite, 0)
	d.putDesc(descBase, 0, table, 3*descSize, descFlagIndirct, 0)
	d.publish(0)
	_, chain, ok, err := d.q.Pop(d.m)
	if err != nil || !ok || len(chain) != 3 || chain[1].Len != 4096 || !chain[2].Write {
		t.Fatalf("chain %+v ok %v err %v", chain, ok, err)
	}
}

// Hostile drivers: every case must end in an error, never a panic or a
// hang.
func TestHostileQueues(t *testing.T) {
	tests := []struct {
		name  string
		setup func(d *driver)
		want  error
	}{
		{"descriptor loop", func(d *driver) {
			d.putDesc(descBase, 0, dataBase, 16, descFlagNext, 1)
			d.putDesc(descBase, 1, dataBase, 16, descFlagNext, 0)
			d.publish(0)
		}, ErrChainTooLong},
		{"self loop", func(d *driver) {
			d.putDesc(descBase, 3, dataBase, 16, descFlagNext, 3)
			d.publish(3)
		}, ErrChainTooLong},
		{"next out of range", func(d *driver) {
			d.putDesc(descBase, 0, dataBase, 16, descFlagNext, 200)
			d.publish(0)
		}, ErrBadHead},
		{"head out of range", func(d *driver) { d.publish(9) }, ErrBadHead},
		{"avail jumps past the queue size", func(d *driver) {
			d.m.PutUint16(availAt+2, 9)
		}, ErrAvailOverrun},
		{"avail goes backwards", func(d *driver) {
			d.m.PutUint16(availAt+2, 0xffff)
		}, ErrAvailOverrun},
		{"buffer outside RAM", func(d *driver) {
			d.putDesc(descBase, 0, ramSize-8, 16, 0, 0)
			d.publish(0)
		}, ErrBadDescriptor},
		{"address wraps", func(d *driver) {
			d.putDesc(descBase, 0, ^uint64(0)-4, 16, 0, 0)
			d.publish(0)
		}, ErrBadDescriptor},
		{"length 0xffffffff", func(d *driver) {
			d.putDesc(descBase, 0, dataBase, 0xffffffff, 0, 0)
			d.publish(0)
		}, ErrBadDescriptor},
		{"nested indirect", func(d *driver) {
			d.putDesc(0x8000, 0, 0x8100, 16, descFlagIndirct, 0)
			d.putDesc(descBase, 0, 0x8000, 16, descFlagIndirct, 0)
			d.publish(0)
		}, ErrBadIndirect},
		{"indirect with next", func(d *driver) {
			d.putDesc(descBase, 0, 0x8000, 16, descFlagIndirct|descFlagNext, 1)
			d.publish(0)
		}, ErrBadIndirect},
		{"indirect length not a multiple of 16", func(d *driver) {
			d.putDesc(descBase, 0, 0x8000, 24, descFlagIndirct, 0)
			d.publish(0)
		}, ErrBadIndirect},
		{"indirect loop", func(d *driver) {
			d.putDesc(0x8000, 0, dataBase, 16, descFlagNext, 1)
			d.putDesc(0x8000, 1, dataBase, 16, descFlagNext, 0)
			d.putDesc(descBase, 0, 0x8000, 32, descFlagIndirct, 0)
			d.publish(0)
		}, ErrChainTooLong},
		{"indirect table outside RAM", func(d *driver) {
			d.putDesc(descBase, 0, ramSize-16, 64, descFlagIndirct, 0)
			d.publish(0)
		}, ErrBadDescriptor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, 8)
			tt.setup(d)
			_, _, _, err := d.q.Pop(d.m)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	m, _ := mem.New(mem.Region{Base: 0, Data: make([]byte, 0x10000)})
	tests := []struct {
		name string
		q    Queue
		ok   bool
	}{
		{"good", Queue{Size: 256, Desc: 0x1000, Avail: 0x2000, Used: 0x3000}, true},
		{"size 0", Queue{Size: 0, Desc: 0x1000, Avail: 0x2000, Used: 0x3000}, false},
		{"size not a power of two", Queue{Size: 100, Desc: 0x1000, Avail: 0x2000, Used: 0x3000}, false},
		{"size above max", Queue{Size: 512, Desc: 0x1000, Avail: 0x2000, Used: 0x3000}, false},
		{"misaligned descriptors", Queue{Size: 8, Desc: 0x1008, Avail: 0x2000, Used: 0x3000}, false},
		{"used ring outside RAM", Queue{Size: 256, Desc: 0x1000, Avail: 0x2000, Used: 0xff00}, false},
		{"rings in MMIO space", Queue{Size: 8, Desc: 0xd000_0000, Avail: 0x2000, Used: 0x3000}, false},
	}
	for _, tt := range tests {
		q := tt.q
		err := q.Validate(m, 256)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
		if err != nil && !errors.Is(err, ErrQueueConfig) {
			t.Errorf("%s: err %v is not ErrQueueConfig", tt.name, err)
		}
	}
}

func TestEventIdx(t *testing.T) {
	d := newDriver(t, 8)
	d.q.EventIdx = true
	// The driver asks for an interrupt when used idx passes 2.
	d.m.PutUint16(availAt+availHeader+2*8, 2)
	for i := 0; i < 3; i++ {
		d.post(buf{1, true})
	}
	for i := 0; i < 3; i++ {
		old := d.q.UsedIdx()
		h, _, _, _ := d.q.Pop(d.m)
		d.q.PushUsed(d.m, h, 1)
		want := i == 2 // crossing used_event 2 means new idx 3
		if got := d.q.NeedsInterrupt(d.m, old); got != want {
			t.Errorf("push %d: NeedsInterrupt = %v, want %v", i, got, want)
		}
	}
	d.q.SetAvailEvent(d.m)
	if ev, _ := d.m.Uint16(usedAt + usedHeader + usedElem*8); ev != 3 {
		t.Errorf("avail_event = %d, want 3", ev)
	}
}

func BenchmarkPopPush(b *testing.B) {
	t := &testing.T{}
	d := newDriver(t, 256)
	b.ReportAllocs()
	for b.Loop() {
		d.post(buf{16, false}, buf{4096, true}, buf{1, true})
		h, _, _, err := d.q.Pop(d.m)
		if err != nil {
			b.Fatal(err)
		}
		d.q.PushUsed(d.m, h, 4097)
		d.data = dataBase
	}
}
