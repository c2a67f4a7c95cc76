package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/mem"
)

// pairBackend is a NetBackend on one end of a SOCK_SEQPACKET socket pair:
// like a TAP, each read and write is one frame. The test plays the host
// network on the other end.
type pairBackend struct {
	fd, peer int
	offload  atomic.Pointer[NetOffloads]
	caps     NetBackendCaps
}

func newPairBackend(t testing.TB) *pairBackend {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	// Room for a few 64 KiB frames in flight.
	for _, fd := range fds {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 1<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	}
	b := &pairBackend{fd: fds[0], peer: fds[1], caps: NetBackendCaps{VnetHeader: true}}
	b.offload.Store(nil)
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return b
}

func (b *pairBackend) Fd() int                        { return b.fd }
func (b *pairBackend) SetOffload(o NetOffloads) error { b.offload.Store(&o); return nil }
func (b *pairBackend) Caps() NetBackendCaps           { return b.caps }

// netRing is one queue laid out by a test driver.
type netRing struct {
	q         Queue
	next, idx uint16
	desc      uint64
}

// netRig is a Net device with a fake driver on fake guest memory.
type netRig struct {
	t      testing.TB
	m      *mem.Memory
	n      *Net
	be     *pairBackend
	rings  [2]*netRing
	data   uint64
	irqs   [2]atomic.Int32
	queues []*Queue
	kicks  []int
	loop   chan error // what Loop returned, once it has
}

const (
	netRAM      = 8 << 20
	netDataBase = 0x100000
)

// newNetRig makes a rig whose device runs its Loop, as the transport
// would start it.
func newNetRig(t testing.TB, features uint64) *netRig {
	t.Helper()
	r := newIdleNetRig(t, features)
	r.startLoop()
	return r
}

// tapCaps are a TAP's: the virtio-net header on every frame.
var tapCaps = NetBackendCaps{VnetHeader: true}

// startLoop runs the device's Loop, as the transport does at DRIVER_OK.
// Loop serves at once whatever the rings already hold.
func (r *netRig) startLoop() {
	t := r.t
	t.Helper()
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	for range r.queues {
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		r.kicks = append(r.kicks, efd)
	}
	r.loop = make(chan error, 1)
	go func() { r.loop <- r.n.Loop(r.kicks, stop) }()
	t.Cleanup(func() {
		signal(stop)
		select {
		case <-r.loop:
		case <-time.After(5 * time.Second):
			t.Error("Loop did not stop")
		}
		for _, fd := range append(r.kicks, stop) {
			unix.Close(fd)
		}
	})
}

// newIdleNetRig makes a rig with an active device and no Loop: the test
// calls the device's parts itself.
func newIdleNetRig(t testing.TB, features uint64) *netRig {
	return newIdleNetRigCaps(t, features, tapCaps)
}

// newIdleNetRigCaps makes an idle rig whose backend has caps.
func newIdleNetRigCaps(t testing.TB, features uint64, caps NetBackendCaps) *netRig {
	t.Helper()
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, netRAM)})
	if err != nil {
		t.Fatal(err)
	}
	r := &netRig{t: t, m: m, be: newPairBackend(t), data: netDataBase}
	r.be.caps = caps
	for i := range r.rings {
		base := uint64(0x10000 * (i + 1))
		ring := &netRing{desc: base}
		ring.q = Queue{Size: 64, Desc: base, Avail: base + 0x1000, Used: base + 0x2000, EventIdx: features&FeatureEventIdx != 0}
		if err := ring.q.Validate(m, netQueueMax); err != nil {
			t.Fatal(err)
		}
		r.rings[i] = ring
		r.queues = append(r.queues, &ring.q)
	}
	r.n, err = NewNet(r.be, [6]byte{0x52, 0x54, 0, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.n.Activate(m, features, r.queues, func(q int) { r.irqs[q].Add(1) }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.n.Reset)
	return r
}

// signal makes an eventfd readable.
func signal(efd int) {
	var one [8]byte
	one[0] = 1
	_, _ = unix.Write(efd, one[:])
}

// kick notifies queue qi, as the driver's write to its notify address
// does through the ioeventfd.
func (r *netRig) kick(qi int) { signal(r.kicks[qi]) }

// waitIRQ waits for an interrupt on queue qi.
func (r *netRig) waitIRQ(qi int) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.irqs[qi].Load() == 0 {
		if time.Now().After(deadline) {
			r.t.Fatalf("no interrupt on queue %d", qi)
		}
		time.Sleep(time.Millisecond)
	}
}

// post chains buffers of the given lengths on queue qi and publishes the
// chain; it returns the buffers' guest addresses.
func (r *netRig) post(qi int, write bool, lens ...uint32) []uint64 {
	ring := r.rings[qi]
	head := ring.next
	var addrs []uint64
	for i, l := range lens {
		d := ring.next
		ring.next = (ring.next + 1) % ring.q.Size
		flags := uint16(0)
		if write {
			flags |= descFlagWrite
		}
		if i < len(lens)-1 {
			flags |= descFlagNext
		}
		b, _ := r.m.Slice(ring.desc+uint64(d)*descSize, descSize)
		binary.LittleEndian.PutUint64(b, r.data)
		binary.LittleEndian.PutUint32(b[8:], l)
		binary.LittleEndian.PutUint16(b[12:], flags)
		binary.LittleEndian.PutUint16(b[14:], ring.next)
		addrs = append(addrs, r.data)
		r.data += uint64(l+15) &^ 15
	}
	r.m.PutUint16(ring.q.Avail+availHeader+2*uint64(ring.idx%ring.q.Size), head)
	ring.idx++
	// The index word is published atomically, as a driver's store
	// release would, so the device sees the entries before it.
	r.m.StoreUint32(ring.q.Avail, uint32(ring.idx)<<16)
	return addrs
}

// usedIdx reads the device's used index for queue qi from guest memory.
func (r *netRig) usedIdx(qi int) uint16 {
	w, _ := r.m.LoadUint32(r.rings[qi].q.Used)
	return uint16(w >> 16)
}

// usedElem reads used element i of queue qi.
func (r *netRig) usedElem(qi int, i uint16) (id, length uint32) {
	at := r.rings[qi].q.Used + usedHeader + usedElem*uint64(i%r.rings[qi].q.Size)
	b, _ := r.m.Slice(at, usedElem)
	return binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
}

func (r *netRig) waitUsed(qi int, want uint16) {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.usedIdx(qi) != want {
		if time.Now().After(deadline) {
			r.t.Fatalf("queue %d: used idx %d, want %d", qi, r.usedIdx(qi), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// hostSend sends one frame (header included) into the device's backend.
func (r *netRig) hostSend(frame []byte) {
	r.t.Helper()
	if _, err := unix.Write(r.be.peer, frame); err != nil {
		r.t.Fatal(err)
	}
}

// hostRecv reads one frame the device sent, or nil after a short wait.
func (r *netRig) hostRecv() []byte {
	buf := make([]byte, NetHeaderSize+netMaxFrame+100)
	pfd := []unix.PollFd{{Fd: int32(r.be.peer), Events: unix.POLLIN}}
	if n, _ := unix.Poll(pfd, 200); n == 0 {
		return nil
	}
	n, err := unix.Read(r.be.peer, buf)
	if err != nil {
		r.t.Fatal(err)
	}
	return buf[:n]
}

// txHeader builds a virtio-net header.
func txHeader(flags, gso uint8, gsoSize, csumStart, csumOff uint16) []byte {
	h := make([]byte, NetHeaderSize)
	h[0], h[1] = flags, gso
	binary.LittleEndian.PutUint16(h[4:], gsoSize)
	binary.LittleEndian.PutUint16(h[6:], csumStart)
	binary.LittleEndian.PutUint16(h[8:], csumOff)
	return h
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed
	}
	return b
}

func TestCheckTxHeader(t *testing.T) {
	all := (&Net{caps: tapCaps}).Features()
	plain := append(txHeader(0, 0, 0, 0, 0), pattern(60, 1)...)
	tests := []struct {
		name     string
		frame    []byte
		features uint64
		want     error
	}{
		{"plain frame", plain, all, nil},
		{"header only", txHeader(0, 0, 0, 0, 0), all, ErrNetShortFrame},
		{"Ethernet header only", append(txHeader(0, 0, 0, 0, 0), pattern(netEthHeader, 1)...), all, nil},
		{"shorter than an Ethernet header", append(txHeader(0, 0, 0, 0, 0), pattern(netEthHeader-1, 1)...), all, ErrNetShortFrame},
		{"shorter than the header", make([]byte, NetHeaderSize-1), all, ErrNetShortFrame},
		{"partial checksum", append(txHeader(netHdrFlagNeedsCsum, 0, 0, 34, 16), pattern(60, 1)...), all, nil},
		{"checksum field past the end", append(txHeader(netHdrFlagNeedsCsum, 0, 0, 50, 9), pattern(60, 1)...), all, ErrNetCsum},
		{"partial checksum not negotiated", append(txHeader(netHdrFlagNeedsCsum, 0, 0, 34, 16), pattern(60, 1)...), all &^ NetFeatureCsum, ErrNetCsum},
		{"TSOv4", append(txHeader(netHdrFlagNeedsCsum, netGSOTCPv4, 1448, 34, 16), pattern(3000, 1)...), all, nil},
		{"TSOv6 with ECN", append(txHeader(netHdrFlagNeedsCsum, netGSOTCPv6|netGSOECN, 1428, 54, 16), pattern(3000, 1)...), all, nil},
		{"TSOv4 not negotiated", append(txHeader(netHdrFlagNeedsCsum, netGSOTCPv4, 1448, 34, 16), pattern(3000, 1)...), all &^ NetFeatureHostTSO4, ErrNetGSO},
		{"ECN not negotiated", append(txHeader(netHdrFlagNeedsCsum, netGSOTCPv4|netGSOECN, 1448, 34, 16), pattern(3000, 1)...), all &^ NetFeatureHostECN, ErrNetGSO},
		{"GSO with segment size 0", append(txHeader(netHdrFlagNeedsCsum, netGSOTCPv4, 0, 34, 16), pattern(3000, 1)...), all, ErrNetGSO},
		{"GSO without partial checksum", append(txHeader(0, netGSOTCPv4, 1448, 0, 0), pattern(3000, 1)...), all, ErrNetGSO},
		{"UDP fragmentation offload", append(txHeader(netHdrFlagNeedsCsum, 3, 1448, 34, 6), pattern(3000, 1)...), all, ErrNetGSO},
		{"unknown GSO type", append(txHeader(netHdrFlagNeedsCsum, 0x42, 1448, 34, 16), pattern(3000, 1)...), all, ErrNetGSO},
		{"longer than 64 KiB", append(txHeader(0, 0, 0, 0, 0), make([]byte, netMaxFrame+1)...), all, ErrNetLongFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckTxHeader(tt.frame, tt.features); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNetTransmit(t *testing.T) {
	// The loop starts once the frames are written: post publishes each
	// chain before the test fills its buffers, which a driver never does.
	r := newIdleNetRig(t, (&Net{caps: tapCaps}).Features())
	// A TSO frame with its header split over two descriptors and its data
	// over three.
	hdr := txHeader(netHdrFlagNeedsCsum, netGSOTCPv4, 1448, 34, 16)
	data := pattern(20000, 9)
	addrs := r.post(netTxQueue, false, 5, 7, 1000, 15000, 4000)
	want := append(append([]byte{}, hdr...), data...)
	off := 0
	for i, l := range []int{5, 7, 1000, 15000, 4000} {
		r.m.WriteAt(want[off:off+l], addrs[i])
		off += l
	}
	// A frame with a device-writable buffer, and one too long: dropped.
	r.post(netTxQueue, true, 100)
	long := r.post(netTxQueue, false, NetHeaderSize, netMaxFrame+1)
	r.m.WriteAt(txHeader(0, 0, 0, 0, 0), long[0])
	// A valid small frame after them still goes out.
	small := append(txHeader(0, 0, 0, 0, 0), pattern(64, 3)...)
	a := r.post(netTxQueue, false, uint32(len(small)))
	r.m.WriteAt(small, a[0])

	r.startLoop()
	r.kick(netTxQueue)
	if got := r.hostRecv(); !bytes.Equal(got, want) {
		t.Fatalf("host got %d bytes, want the %d-byte TSO frame", len(got), len(want))
	}
	if got := r.hostRecv(); !bytes.Equal(got, small) {
		t.Fatalf("host got %d bytes, want the %d-byte small frame", len(got), len(small))
	}
	if got := r.hostRecv(); got != nil {
		t.Fatalf("host got an extra %d-byte frame", len(got))
	}
	r.waitUsed(netTxQueue, 4)
	if d := r.n.Stats.TxDropped.Load(); d != 2 {
		t.Fatalf("TxDropped %d, want 2", d)
	}
	r.waitIRQ(netTxQueue)
}

func TestNetReceiveMergeable(t *testing.T) {
	r := newNetRig(t, (&Net{caps: tapCaps}).Features())
	if got := r.be.offload.Load(); got == nil || *got != (NetOffloads{Csum: true, TSO4: true, TSO6: true, TSOECN: true}) {
		t.Fatalf("offloads %+v after activation", got)
	}
	var bufs [][]uint64
	for range 8 {
		bufs = append(bufs, r.post(netRxQueue, true, 1024))
	}
	frame := append(txHeader(0, 0, 0, 0, 0), pattern(2900, 5)...) // 2912 bytes: 3 buffers
	r.hostSend(frame)
	r.kick(netRxQueue)
	r.waitUsed(netRxQueue, 3)
	got := make([]byte, 0, len(frame))
	for i := range uint16(3) {
		id, l := r.usedElem(netRxQueue, i)
		b := make([]byte, l)
		r.m.ReadAt(b, bufs[id][0])
		got = append(got, b...)
	}
	nb := binary.LittleEndian.Uint16(got[netHdrNumBuffers:])
	if nb != 3 {
		t.Fatalf("num_buffers %d, want 3", nb)
	}
	binary.LittleEndian.PutUint16(got[netHdrNumBuffers:], 0)
	if !bytes.Equal(got, frame) {
		t.Fatal("received frame differs from what the host sent")
	}
	r.waitIRQ(netRxQueue)
}

// TestNetReceiveDirect: with room for the largest frame posted, frames are
// read from the backend straight into the driver's buffers (RxCopied stays
// 0), the chains a frame does not reach serve the next ones, and once the
// posted room falls short of a largest frame the device copies instead.
func TestNetReceiveDirect(t *testing.T) {
	tests := []struct {
		name       string
		features   uint64
		chain      []uint32 // one receive chain's buffers
		chains     int
		frames     []int // payload lengths after the header
		wantBufs   []int // num_buffers per frame
		wantCopied uint64
		bare       bool // the backend sends bare Ethernet frames
	}{
		{
			name: "mergeable", features: (&Net{caps: tapCaps}).Features(),
			chain: []uint32{1536}, chains: 64,
			// 1 buffer, 43 buffers (64 KiB), then 20 left: too few for a
			// largest frame, so the third is copied.
			frames: []int{100, netMaxFrame, 3000}, wantBufs: []int{1, 43, 2}, wantCopied: 1,
		},
		{
			name: "big packets", features: (&Net{caps: tapCaps}).Features() &^ NetFeatureMrgRxbuf,
			chain:  append([]uint32{NetHeaderSize}, slicesOf(17, 4096)...),
			chains: 3, frames: []int{60, netMaxFrame, 9000}, wantBufs: []int{1, 1, 1},
		},
		{
			name: "bare mergeable", features: (&Net{}).Features(), bare: true,
			chain: []uint32{1536}, chains: 64,
			frames: []int{100, netMaxFrame, 3000}, wantBufs: []int{1, 43, 2}, wantCopied: 1,
		},
		{
			// The header alone in the first buffer: the frame starts in
			// the second.
			name: "bare big packets", features: (&Net{}).Features() &^ NetFeatureMrgRxbuf, bare: true,
			chain:  append([]uint32{NetHeaderSize}, slicesOf(17, 4096)...),
			chains: 3, frames: []int{60, netMaxFrame, 9000}, wantBufs: []int{1, 1, 1},
		},
		{
			name: "bare, header and frame in one buffer", features: (&Net{}).Features() &^ NetFeatureMrgRxbuf, bare: true,
			chain:  []uint32{NetHeaderSize + netMaxFrame},
			chains: 3, frames: []int{60, netMaxFrame, 9000}, wantBufs: []int{1, 1, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caps := tapCaps
			if tt.bare {
				caps = NetBackendCaps{}
			}
			r := newIdleNetRigCaps(t, tt.features, caps)
			r.startLoop()
			var chains [][]uint64
			for range tt.chains {
				chains = append(chains, r.post(netRxQueue, true, tt.chain...))
			}
			heads := map[uint32]int{}
			for i := range chains {
				heads[uint32(i*len(tt.chain))] = i
			}
			r.kick(netRxQueue)
			used := uint16(0)
			for i, l := range tt.frames {
				frame := append(txHeader(0, 0, 0, 0, 0), pattern(l, byte(i))...)
				if tt.bare {
					r.hostSend(frame[NetHeaderSize:])
				} else {
					r.hostSend(frame)
				}
				used += uint16(tt.wantBufs[i])
				r.waitUsed(netRxQueue, used)
				var got []byte
				for e := used - uint16(tt.wantBufs[i]); e != used; e++ {
					id, n := r.usedElem(netRxQueue, e)
					for _, a := range chains[heads[id]] {
						b := make([]byte, min(n, bufLen(tt.chain, a, chains[heads[id]])))
						r.m.ReadAt(b, a)
						got = append(got, b...)
						n -= uint32(len(b))
					}
				}
				if nb := binary.LittleEndian.Uint16(got[netHdrNumBuffers:]); int(nb) != tt.wantBufs[i] {
					t.Fatalf("frame %d: num_buffers %d, want %d", i, nb, tt.wantBufs[i])
				}
				binary.LittleEndian.PutUint16(got[netHdrNumBuffers:], 0)
				if !bytes.Equal(got, frame) {
					t.Fatalf("frame %d: the driver got %d bytes, not the %d the host sent", i, len(got), len(frame))
				}
			}
			if c := r.n.Stats.RxCopied.Load(); c != tt.wantCopied {
				t.Fatalf("RxCopied %d, want %d", c, tt.wantCopied)
			}
			if f := r.n.Stats.RxFrames.Load(); f != uint64(len(tt.frames)) {
				t.Fatalf("RxFrames %d, want %d", f, len(tt.frames))
			}
		})
	}
}

// slicesOf is n lengths of l.
func slicesOf(n int, l uint32) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = l
	}
	return s
}

// bufLen is the length of the buffer at a in a chain laid out by post.
func bufLen(lens []uint32, a uint64, addrs []uint64) uint32 {
	for i := range addrs {
		if addrs[i] == a {
			return lens[i]
		}
	}
	return 0
}

// TestNetReceiveBackpressure: with no buffers posted, frames wait in the
// backend (none is dropped) and govm does not spin; once the driver posts
// buffers and kicks, they all arrive in order.
func TestNetReceiveBackpressure(t *testing.T) {
	for _, caps := range []NetBackendCaps{tapCaps, {MTU: 65520}} {
		t.Run(fmt.Sprintf("header=%v", caps.VnetHeader), func(t *testing.T) { testNetReceiveBackpressure(t, caps) })
	}
}

// testNetReceiveBackpressure: over a TAP or a bare frame socket.
func testNetReceiveBackpressure(t *testing.T, caps NetBackendCaps) {
	r := newIdleNetRigCaps(t, (&Net{caps: caps}).Features(), caps)
	r.startLoop()
	var frames [][]byte
	for i := range 5 {
		f := append(txHeader(0, 0, 0, 0, 0), pattern(100+i, byte(i))...)
		frames = append(frames, f)
		if caps.VnetHeader {
			r.hostSend(f)
		} else {
			r.hostSend(f[NetHeaderSize:])
		}
	}
	time.Sleep(100 * time.Millisecond)
	if r.usedIdx(netRxQueue) != 0 || r.n.Stats.RxDropped.Load() != 0 {
		t.Fatalf("with no buffers: used %d, dropped %d", r.usedIdx(netRxQueue), r.n.Stats.RxDropped.Load())
	}
	if r.n.Stats.RxStalls.Load() == 0 {
		t.Fatal("no stall counted while the driver posted no buffers")
	}
	wakes := r.n.Stats.Wakes.Load()
	time.Sleep(100 * time.Millisecond)
	if w := r.n.Stats.Wakes.Load(); w != wakes {
		t.Fatalf("the loop woke %d times while waiting for buffers", w-wakes)
	}
	var bufs [][]uint64
	for range 5 {
		bufs = append(bufs, r.post(netRxQueue, true, 2048))
	}
	r.kick(netRxQueue)
	r.waitUsed(netRxQueue, 5)
	for i := range uint16(5) {
		id, l := r.usedElem(netRxQueue, i)
		b := make([]byte, l)
		r.m.ReadAt(b, bufs[id][0])
		binary.LittleEndian.PutUint16(b[netHdrNumBuffers:], 0)
		if !bytes.Equal(b, frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
}

// TestNetReceiveWaitsForEnoughBuffers: a frame needing three mergeable
// buffers while two are posted waits, and the device asks (EVENT_IDX) to
// be kicked on the driver's next buffer, not one already posted; a kick
// after the third buffer delivers it.
func TestNetReceiveWaitsForEnoughBuffers(t *testing.T) {
	r := newNetRig(t, (&Net{caps: tapCaps}).Features())
	r.post(netRxQueue, true, 1024)
	r.post(netRxQueue, true, 1024)
	r.hostSend(append(txHeader(0, 0, 0, 0, 0), pattern(2900, 5)...))
	r.kick(netRxQueue)
	availEvent := r.rings[netRxQueue].q.Used + usedHeader + usedElem*64
	deadline := time.Now().Add(5 * time.Second)
	for {
		if w, _ := r.m.LoadUint32(availEvent); uint16(w) == 2 && r.n.Stats.RxStalls.Load() > 0 {
			break
		}
		if time.Now().After(deadline) {
			w, _ := r.m.LoadUint32(availEvent)
			t.Fatalf("avail_event %d, want 2 (kick on the next buffer)", uint16(w))
		}
		time.Sleep(time.Millisecond)
	}
	if r.usedIdx(netRxQueue) != 0 {
		t.Fatal("a frame was split over too few buffers")
	}
	r.post(netRxQueue, true, 1024)
	r.kick(netRxQueue)
	r.waitUsed(netRxQueue, 3)
}

// TestNetReceiveTooBig: without MRG_RXBUF a frame larger than the posted
// chain is dropped and counted, and the chain serves the next frame.
func TestNetReceiveTooBig(t *testing.T) {
	r := newNetRig(t, (&Net{caps: tapCaps}).Features()&^NetFeatureMrgRxbuf)
	if got := r.be.offload.Load(); got == nil || *got != (NetOffloads{Csum: true, TSO4: true, TSO6: true, TSOECN: true}) {
		t.Fatalf("offloads %+v", got)
	}
	addr := r.post(netRxQueue, true, NetHeaderSize, 1500)
	r.hostSend(append(txHeader(0, 0, 0, 0, 0), pattern(4000, 1)...))
	small := append(txHeader(0, 0, 0, 0, 0), pattern(1000, 2)...)
	r.hostSend(small)
	r.kick(netRxQueue)
	r.waitUsed(netRxQueue, 1)
	if d, f := r.n.Stats.RxDropped.Load(), r.n.Stats.RxFrames.Load(); d != 1 || f != 1 {
		t.Fatalf("RxDropped %d, RxFrames %d: want 1 of each", d, f)
	}
	_, l := r.usedElem(netRxQueue, 0)
	if int(l) != len(small) {
		t.Fatalf("used length %d, want %d", l, len(small))
	}
	got := make([]byte, 1000)
	r.m.ReadAt(got, addr[1])
	if !bytes.Equal(got, small[NetHeaderSize:]) {
		t.Fatal("small frame's data differs")
	}
	if nb, _ := r.m.Uint16(addr[0] + netHdrNumBuffers); nb != 1 {
		t.Fatalf("num_buffers %d, want 1", nb)
	}
}

// TestNetHostileReceiveQueue: a receive chain with a device-readable
// buffer breaks the queue: Loop returns the error (the transport then
// marks the device as needing reset) and nothing panics.
func TestNetHostileReceiveQueue(t *testing.T) {
	r := newNetRig(t, (&Net{caps: tapCaps}).Features())
	r.post(netRxQueue, false, 2048)
	r.hostSend(append(txHeader(0, 0, 0, 0, 0), pattern(100, 1)...))
	r.kick(netRxQueue)
	select {
	case err := <-r.loop:
		if !errors.Is(err, errNetReadableRx) {
			t.Fatalf("Loop returned %v, want %v", err, errNetReadableRx)
		}
		r.loop <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("a device-readable receive buffer was not reported")
	}
}

func TestNetConfig(t *testing.T) {
	n, err := NewNet(newPairBackend(t), [6]byte{0x52, 0x54, 0xaa, 0xbb, 0xcc, 0xdd})
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 12)
	n.ReadConfig(0, b)
	want := []byte{0x52, 0x54, 0xaa, 0xbb, 0xcc, 0xdd, netLinkUp, 0, 1, 0, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("config % x, want % x", b, want)
	}
	if _, err := NewNet(newPairBackend(t), [6]byte{0x01}); err == nil {
		t.Fatal("a multicast MAC was accepted")
	}
}

// BenchmarkNetTransmit sends 1514-byte frames through transmit, the TX
// hot path: the chain is written once and made available again each time,
// so -benchmem counts what the device allocates (nothing).
func BenchmarkNetTransmit(b *testing.B) {
	r := newIdleNetRig(b, (&Net{caps: tapCaps}).Features())
	frame := append(txHeader(0, 0, 0, 0, 0), pattern(1502, 1)...)
	addr := r.post(netTxQueue, false, uint32(len(frame)))
	r.m.WriteAt(frame, addr[0])
	if _, _, err := r.n.transmit(r.m, &r.rings[netTxQueue].q); err != nil {
		b.Fatal(err)
	}
	go func() {
		buf := make([]byte, 70000)
		for {
			if _, err := unix.Read(r.be.peer, buf); err != nil {
				return
			}
		}
	}()
	ring := r.rings[netTxQueue]
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) - NetHeaderSize))
	for b.Loop() {
		r.m.PutUint16(ring.q.Avail+availHeader+2*uint64(ring.idx%ring.q.Size), 0)
		ring.idx++
		r.m.StoreUint32(ring.q.Avail, uint32(ring.idx)<<16)
		if _, _, err := r.n.transmit(r.m, &ring.q); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetReceive moves 1514-byte frames from the backend into the
// driver's buffers, the RX hot path: the driver posts 4 KiB mergeable
// buffers and gives each back as soon as it is used, so the device reads
// every frame in place; -benchmem counts what it allocates (nothing).
func BenchmarkNetReceive(b *testing.B) {
	r := newNetRig(b, (&Net{caps: tapCaps}).Features())
	ring := r.rings[netRxQueue]
	for range ring.q.Size {
		r.post(netRxQueue, true, 4096)
	}
	r.kick(netRxQueue)
	frame := append(txHeader(0, 0, 0, 0, 0), pattern(1502, 1)...)
	used := uint16(0)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame) - NetHeaderSize))
	for b.Loop() {
		if _, err := unix.Write(r.be.peer, frame); err != nil {
			b.Fatal(err)
		}
		for r.usedIdx(netRxQueue) == used {
		}
		id, _ := r.usedElem(netRxQueue, used)
		used++
		// Post the buffer again, as the driver refills its ring.
		r.m.PutUint16(ring.q.Avail+availHeader+2*uint64(ring.idx%ring.q.Size), uint16(id))
		ring.idx++
		r.m.StoreUint32(ring.q.Avail, uint32(ring.idx)<<16)
	}
	if c := r.n.Stats.RxCopied.Load(); c != 0 {
		b.Fatalf("%d frames were copied", c)
	}
}

// TestNetBareBackend: over a backend without the virtio-net header the
// device offers no offload, offers the backend's MTU, sends frames
// without the header, and drops those asking for an offload.
func TestNetBareBackend(t *testing.T) {
	caps := NetBackendCaps{MTU: 65520}
	n, err := NewNet(&pairBackend{caps: caps}, [6]byte{0x52, 0x54})
	if err != nil {
		t.Fatal(err)
	}
	offloads := uint64(NetFeatureCsum | NetFeatureGuestCsum | NetFeatureGuestTSO4 | NetFeatureGuestTSO6 |
		NetFeatureGuestECN | NetFeatureHostTSO4 | NetFeatureHostTSO6 | NetFeatureHostECN)
	if f := n.Features(); f&offloads != 0 || f&NetFeatureMTU == 0 {
		t.Fatalf("features %#x: want no offload and VIRTIO_NET_F_MTU", f)
	}
	var mtu [2]byte
	n.ReadConfig(netCfgMTU, mtu[:])
	if got := binary.LittleEndian.Uint16(mtu[:]); got != 65520 {
		t.Fatalf("config mtu %d, want 65520", got)
	}
	if _, err := NewNet(&pairBackend{caps: NetBackendCaps{MTU: 67}}, [6]byte{0x52}); err == nil {
		t.Fatal("MTU 67 accepted")
	}

	r := newIdleNetRigCaps(t, n.Features(), caps)
	frame := append(txHeader(0, 0, 0, 0, 0), pattern(1500, 4)...)
	a := r.post(netTxQueue, false, 10, uint32(len(frame)-10))
	r.m.WriteAt(frame[:10], a[0])
	r.m.WriteAt(frame[10:], a[1])
	csum := append(txHeader(netHdrFlagNeedsCsum, 0, 0, 34, 16), pattern(60, 1)...)
	a = r.post(netTxQueue, false, uint32(len(csum)))
	r.m.WriteAt(csum, a[0])
	r.startLoop()
	r.kick(netTxQueue)
	if got := r.hostRecv(); !bytes.Equal(got, frame[NetHeaderSize:]) {
		t.Fatalf("host got %d bytes, want the bare %d-byte frame", len(got), len(frame)-NetHeaderSize)
	}
	if got := r.hostRecv(); got != nil {
		t.Fatalf("a frame asking for a checksum the device never offered was sent (%d bytes)", len(got))
	}
	r.waitUsed(netTxQueue, 2)
	if r.be.offload.Load() != nil {
		t.Fatal("SetOffload called on a backend without the header")
	}
}

// TestNetTransmitBackpressure: when the backend has no room the frame
// waits in the ring (TxStalls counts it), nothing is dropped, and once
// the host reads, every frame goes out in order.
func TestNetTransmitBackpressure(t *testing.T) {
	caps := NetBackendCaps{MTU: 65520}
	r := newIdleNetRigCaps(t, (&Net{caps: caps}).Features(), caps)
	const frames = 40 // 40 x 60 KB is past every socket buffer
	var want [][]byte
	for i := range frames {
		f := append(txHeader(0, 0, 0, 0, 0), pattern(60000, byte(i))...)
		a := r.post(netTxQueue, false, uint32(len(f)))
		r.m.WriteAt(f, a[0])
		want = append(want, f[NetHeaderSize:])
	}
	r.startLoop()
	r.kick(netTxQueue)
	deadline := time.Now().Add(5 * time.Second)
	for r.n.Stats.TxStalls.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the backend never filled")
		}
		time.Sleep(time.Millisecond)
	}
	if u := r.usedIdx(netTxQueue); u >= frames {
		t.Fatalf("all %d frames used with the backend full", u)
	}
	for i := range frames {
		if got := r.hostRecv(); !bytes.Equal(got, want[i]) {
			t.Fatalf("frame %d: %d bytes, not the one queued", i, len(got))
		}
	}
	r.waitUsed(netTxQueue, frames)
	if d := r.n.Stats.TxDropped.Load(); d != 0 {
		t.Fatalf("%d frames dropped", d)
	}
}

// TestNetReceiveBareRunt: from a bare-Ethernet backend, a read shorter
// than an Ethernet header is dropped and the next frame delivered whole.
func TestNetReceiveBareRunt(t *testing.T) {
	caps := NetBackendCaps{MTU: 1500}
	r := newIdleNetRigCaps(t, (&Net{caps: caps}).Features(), caps)
	r.startLoop()
	var bufs [][]uint64
	for range 4 {
		bufs = append(bufs, r.post(netRxQueue, true, 2048))
	}
	r.kick(netRxQueue)
	r.hostSend(pattern(netEthHeader-1, 7))
	good := pattern(100, 8)
	r.hostSend(good)
	r.waitUsed(netRxQueue, 1)
	id, l := r.usedElem(netRxQueue, 0)
	b := make([]byte, l)
	r.m.ReadAt(b, bufs[id][0])
	want := append(make([]byte, NetHeaderSize), good...)
	binary.LittleEndian.PutUint16(want[netHdrNumBuffers:], 1)
	if !bytes.Equal(b, want) {
		t.Fatalf("the driver got %d bytes, want the zero header and the 100-byte frame", len(b))
	}
	if d := r.n.Stats.RxDropped.Load(); d != 1 {
		t.Fatalf("RxDropped %d, want 1", d)
	}
}
