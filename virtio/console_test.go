package virtio

import (
	"bytes"
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/govm/govm/mem"
)

// ring is a test driver's queue at its own place in fake memory.
type ring struct {
	q         Queue
	next, idx uint16
}

func newRing(base uint64) *ring {
	return &ring{q: Queue{Size: 16, Desc: base, Avail: base + 0x100, Used: base + 0x200}}
}

// post makes one chain of bufs available.
func (r *ring) post(m *mem.Memory, descs ...Desc) {
	head := r.next
	for i, d := range descs {
		idx := r.next
		r.next = (r.next + 1) % r.q.Size
		var flags uint16
		if d.Write {
			flags |= descFlagWrite
		}
		if i < len(descs)-1 {
			flags |= descFlagNext
		}
		writeDesc(m, r.q.Desc, idx, d.Addr, d.Len, flags, r.next)
	}
	m.PutUint16(r.q.Avail+availHeader+2*uint64(r.idx%r.q.Size), head)
	r.idx++
	_ = m.StoreUint16(r.q.Avail+2, r.idx)
}

// used returns the used elements from index from on.
func (r *ring) used(m *mem.Memory, from uint16) (n uint16, lens []uint32) {
	idx, _ := m.Uint16(r.q.Used + 2)
	for i := from; i != idx; i++ {
		l, _ := m.Uint32(r.q.Used + usedHeader + usedElem*uint64(i%r.q.Size) + 4)
		lens = append(lens, l)
	}
	return idx, lens
}

// syncBuffer is a bytes.Buffer safe for the device's workers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type consoleRig struct {
	t     *testing.T
	m     *mem.Memory
	c     *Console
	rings []*ring
	data  uint64
	ctrlN uint16 // control messages read so far
	irqs  chan int
}

// waitIRQ waits for the device to interrupt queue q; what it wrote
// before is then visible to the test.
func (r *consoleRig) waitIRQ(q int) {
	r.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-r.irqs:
			if got == q {
				return
			}
		case <-timeout:
			r.t.Fatalf("no interrupt on queue %d", q)
		}
	}
}

func newConsoleRig(t *testing.T, ports []ConsolePort) *consoleRig {
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, ramSize)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConsole(ports)
	if err != nil {
		t.Fatal(err)
	}
	r := &consoleRig{t: t, m: m, c: c, data: 0x80000, irqs: make(chan int, 1024)}
	qs := make([]*Queue, c.NumQueues())
	for i := range qs {
		r.rings = append(r.rings, newRing(0x1000+uint64(i)*0x1000))
		qs[i] = &r.rings[i].q
	}
	irq := func(q int) {
		select {
		case r.irqs <- q:
		default:
		}
	}
	if err := c.Activate(m, ConsoleFeatureMultiport|FeatureVersion1, qs, irq); err != nil {
		t.Fatal(err)
	}
	return r
}

// alloc returns guest memory for a buffer of n bytes.
func (r *consoleRig) alloc(n uint32) uint64 {
	a := r.data
	r.data += uint64(n)
	return a
}

// send writes a control message from the driver.
func (r *consoleRig) send(id uint32, event, value uint16) {
	r.t.Helper()
	var msg [consoleCtrlSize]byte
	binary.LittleEndian.PutUint32(msg[:], id)
	binary.LittleEndian.PutUint16(msg[4:], event)
	binary.LittleEndian.PutUint16(msg[6:], value)
	a := r.alloc(consoleCtrlSize)
	r.m.WriteAt(msg[:], a)
	r.rings[consoleCtrlTx].post(r.m, Desc{Addr: a, Len: consoleCtrlSize})
	if err := r.c.Process(consoleCtrlTx); err != nil {
		r.t.Fatal(err)
	}
}

type ctrlMsg struct {
	id           uint32
	event, value uint16
	name         string
}

// recv posts n control buffers and returns the messages the device put
// in them.
func (r *consoleRig) recv(n int) []ctrlMsg {
	r.t.Helper()
	var addrs []uint64
	for range n {
		a := r.alloc(128)
		addrs = append(addrs, a)
		r.rings[consoleCtrlRx].post(r.m, Desc{Addr: a, Len: 128, Write: true})
	}
	if err := r.c.Process(consoleCtrlRx); err != nil {
		r.t.Fatal(err)
	}
	idx, lens := r.rings[consoleCtrlRx].used(r.m, r.ctrlN)
	var msgs []ctrlMsg
	for i, l := range lens {
		// Buffers are used in the order posted; count from the first
		// of this call's.
		a := addrs[0] + uint64(i)*128
		b := make([]byte, l)
		r.m.ReadAt(b, a)
		msgs = append(msgs, ctrlMsg{binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]), string(b[8:])})
	}
	r.ctrlN = idx
	return msgs
}

func TestConsolePorts(t *testing.T) {
	stdinR, stdinW := io.Pipe()
	var out, errOut syncBuffer
	r := newConsoleRig(t, []ConsolePort{{Name: "stdin", In: stdinR}, {Name: "stdout", Out: &out}, {Name: "stderr", Out: &errOut}})

	// The driver announces itself: every port is added, then named and
	// opened from the host side once the driver says it is ready.
	r.send(0, consoleDeviceReady, 1)
	msgs := r.recv(3)
	for i, m := range msgs {
		if m != (ctrlMsg{uint32(i), consoleDeviceAdd, 0, ""}) {
			t.Fatalf("message %d: %+v, want PORT_ADD %d", i, m, i)
		}
	}
	for i, name := range []string{"stdin", "stdout", "stderr"} {
		r.send(uint32(i), consolePortReady, 1)
		got := r.recv(2)
		want := []ctrlMsg{{uint32(i), consolePortName, 1, name}, {uint32(i), consolePortOpen, 1, ""}}
		if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Fatalf("after PORT_READY %d: %+v, want %+v", i, got, want)
		}
	}

	// What the guest writes reaches each port's output, in order.
	for _, c := range []struct {
		port int
		text string
		out  *syncBuffer
	}{{1, "to stdout\n", &out}, {2, "to stderr\n", &errOut}, {1, "\x00\xffbinary", &out}} {
		_, tx := portQueues(c.port)
		a := r.alloc(uint32(len(c.text)))
		r.m.WriteAt([]byte(c.text), a)
		r.rings[tx].post(r.m, Desc{Addr: a, Len: uint32(len(c.text))})
		if err := r.c.Process(tx); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != "to stdout\n\x00\xffbinary" || errOut.String() != "to stderr\n" {
		t.Fatalf("outputs %q %q", out.String(), errOut.String())
	}

	// Input waits for the guest to open the port and for buffers.
	rx, _ := portQueues(0)
	a := r.alloc(4)
	b := r.alloc(64)
	r.rings[rx].post(r.m, Desc{Addr: a, Len: 4, Write: true})
	r.rings[rx].post(r.m, Desc{Addr: b, Len: 64, Write: true})
	if _, err := stdinW.Write([]byte("typed input")); err != nil {
		t.Fatal(err)
	}
	r.c.mu.Lock() // the pump has the bytes and waits for the guest
	opened := r.c.ports[0].guestOpen
	r.c.mu.Unlock()
	if _, lens := r.rings[rx].used(r.m, 0); opened || len(lens) != 0 {
		t.Fatal("input delivered before the guest opened the port")
	}
	r.send(0, consolePortOpen, 1)
	if err := r.c.Process(rx); err != nil {
		t.Fatal(err)
	}
	r.waitIRQ(rx)
	_, lens := r.rings[rx].used(r.m, 0)
	if len(lens) != 2 || lens[0] != 4 || lens[1] != 7 {
		t.Fatalf("receive used lengths %v, want [4 7]", lens)
	}
	got := make([]byte, 11)
	r.m.ReadAt(got[:4], a)
	r.m.ReadAt(got[4:], b)
	if string(got) != "typed input" {
		t.Fatalf("guest received %q", got)
	}

	// End of input closes the port from the host side.
	c := r.alloc(128)
	r.rings[consoleCtrlRx].post(r.m, Desc{Addr: c, Len: 128, Write: true})
	stdinW.Close()
	r.waitIRQ(consoleCtrlRx)
	var closed []ctrlMsg
	if _, lens := r.rings[consoleCtrlRx].used(r.m, r.ctrlN); len(lens) == 1 && lens[0] == consoleCtrlSize {
		b := make([]byte, consoleCtrlSize)
		r.m.ReadAt(b, c)
		closed = append(closed, ctrlMsg{binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]), binary.LittleEndian.Uint16(b[6:]), ""})
	}
	if len(closed) != 1 || closed[0] != (ctrlMsg{0, consolePortOpen, 0, ""}) {
		t.Fatalf("after EOF: %+v, want PORT_OPEN 0 closed", closed)
	}
}

func TestConsoleHostileControl(t *testing.T) {
	r := newConsoleRig(t, []ConsolePort{{Name: "p", Out: io.Discard}})
	// Unknown ports and events are ignored; a flood of DEVICE_READY
	// without control buffers cannot grow the pending list past its bound.
	r.send(99, consolePortReady, 1)
	r.send(99, consolePortOpen, 1)
	r.send(0, 12345, 7)
	for range 200 {
		r.send(0, consoleDeviceReady, 1)
	}
	if n := len(r.c.ctrlOut); n > consoleCtrlQueueLimit {
		t.Fatalf("%d pending control messages", n)
	}
	// A short message and a writable-only chain are used and ignored.
	a := r.alloc(4)
	r.rings[consoleCtrlTx].post(r.m, Desc{Addr: a, Len: 4})
	r.rings[consoleCtrlTx].post(r.m, Desc{Addr: a, Len: 4, Write: true})
	if err := r.c.Process(consoleCtrlTx); err != nil {
		t.Fatal(err)
	}
	// A transmit buffer outside RAM makes the device need reset.
	_, tx := portQueues(0)
	r.rings[tx].post(r.m, Desc{Addr: ramSize - 2, Len: 16})
	if err := r.c.Process(tx); err == nil {
		t.Fatal("transmit outside RAM: no error")
	}
}

func TestConsoleQueueMap(t *testing.T) {
	for i := range ConsoleMaxPorts {
		rx, tx := portQueues(i)
		if p, isRx := queuePort(rx); p != i || !isRx {
			t.Errorf("port %d rx queue %d maps to %d %v", i, rx, p, isRx)
		}
		if p, isRx := queuePort(tx); p != i || isRx {
			t.Errorf("port %d tx queue %d maps to %d %v", i, tx, p, isRx)
		}
	}
	for _, q := range []int{consoleCtrlRx, consoleCtrlTx} {
		if p, _ := queuePort(q); p != -1 {
			t.Errorf("control queue %d maps to port %d", q, p)
		}
	}
}
