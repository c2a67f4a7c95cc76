package virtio

import (
	"bytes"
	"errors"
	"testing"

	"github.com/govm/govm/mem"
)

// rngGuard fills memory around the buffers: the device must leave it.
const rngGuard = 0xa5

func newRNGRig(t *testing.T) (*RNG, *mem.Memory, *ring, *int) {
	t.Helper()
	m, err := mem.New(mem.Region{Base: 0, Data: bytes.Repeat([]byte{rngGuard}, 1<<20)})
	if err != nil {
		t.Fatal(err)
	}
	m.WriteAt(make([]byte, 0x1000), 0x1000) // the ring itself starts zeroed
	r := newRing(0x1000)
	d := NewRNG()
	irqs := new(int)
	if err := d.Activate(m, d.Features(), []*Queue{&r.q}, func(int) { *irqs++ }); err != nil {
		t.Fatal(err)
	}
	return d, m, r, irqs
}

// TestRNG: each chain's writable buffers are filled, in order, and only
// they (guard bytes around them stay); the used length is what was
// written, at most rngMaxChain per chain.
func TestRNG(t *testing.T) {
	d, m, r, irqs := newRNGRig(t)
	r.post(m, Desc{Addr: 0x10000, Len: 16, Write: true}, Desc{Addr: 0x20000, Len: 4096, Write: true})
	r.post(m, Desc{Addr: 0x30000, Len: rngMaxChain + 100, Write: true})
	if err := d.Process(0); err != nil {
		t.Fatal(err)
	}
	_, lens := r.used(m, 0)
	if len(lens) != 2 || lens[0] != 16+4096 || lens[1] != rngMaxChain {
		t.Fatalf("used lengths %v, want [4112 %d]", lens, rngMaxChain)
	}
	for _, b := range []struct{ at, n uint64 }{{0x10000, 16}, {0x20000, 4096}, {0x30000, rngMaxChain}} {
		got := make([]byte, b.n)
		m.ReadAt(got, b.at)
		if bytes.Count(got, []byte{rngGuard}) > int(b.n)/8 {
			t.Errorf("buffer at %#x not filled", b.at)
		}
		around := make([]byte, 2)
		m.ReadAt(around[:1], b.at-1)
		m.ReadAt(around[1:], b.at+b.n)
		if around[0] != rngGuard || around[1] != rngGuard {
			t.Errorf("bytes around %#x changed: %x", b.at, around)
		}
	}
	// Past rngMaxChain, the big buffer is left alone.
	tail := make([]byte, 100)
	m.ReadAt(tail, 0x30000+rngMaxChain)
	if !bytes.Equal(tail, bytes.Repeat([]byte{rngGuard}, 100)) {
		t.Error("bytes past the per-chain bound written")
	}
	if *irqs != 1 {
		t.Fatalf("%d interrupts, want 1", *irqs)
	}
}

// TestRNGBadChains: a device-readable buffer or one outside guest RAM is
// the driver's error (the transport then asks for a reset); nothing is
// written.
func TestRNGBadChains(t *testing.T) {
	for _, tt := range []struct {
		name string
		desc Desc
		want error
	}{
		{"readable", Desc{Addr: 0x10000, Len: 16}, ErrRNGReadable},
		{"outside RAM", Desc{Addr: 1 << 30, Len: 16, Write: true}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, m, r, _ := newRNGRig(t)
			r.post(m, tt.desc)
			err := d.Process(0)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("got %v, want an error (%v)", err, tt.want)
			}
			got := make([]byte, 16)
			m.ReadAt(got, 0x10000)
			if !bytes.Equal(got, bytes.Repeat([]byte{rngGuard}, 16)) {
				t.Fatal("a bad chain's buffer was written")
			}
		})
	}
}

// BenchmarkRNG: a 64-byte request, as the guest's hwrng reads; -benchmem
// shows the device allocates nothing per request.
func BenchmarkRNG(b *testing.B) {
	m, _ := mem.New(mem.Region{Base: 0, Data: make([]byte, 1<<20)})
	r := newRing(0x1000)
	if err := r.q.Validate(m, rngQueueMax); err != nil { // as the transport does
		b.Fatal(err)
	}
	d := NewRNG()
	_ = d.Activate(m, d.Features(), []*Queue{&r.q}, func(int) {})
	b.ReportAllocs()
	for range b.N {
		r.post(m, Desc{Addr: 0x10000, Len: 64, Write: true})
		if err := d.Process(0); err != nil {
			b.Fatal(err)
		}
	}
}
