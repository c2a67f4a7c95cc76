package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/mem"
	"github.com/govm/govm/osthread"
)

// virtio-net (virtio 1.2, 5.1).
const (
	NetFeatureCsum      = 1 << 0  // device takes partially checksummed frames
	NetFeatureGuestCsum = 1 << 1  // driver takes partially checksummed frames
	NetFeatureMAC       = 1 << 5  // config space has the MAC
	NetFeatureGuestTSO4 = 1 << 7  // driver takes TSOv4 frames
	NetFeatureGuestTSO6 = 1 << 8  // driver takes TSOv6 frames
	NetFeatureGuestECN  = 1 << 9  // driver takes TSO frames with ECN
	NetFeatureHostTSO4  = 1 << 11 // device takes TSOv4 frames
	NetFeatureHostTSO6  = 1 << 12 // device takes TSOv6 frames
	NetFeatureHostECN   = 1 << 13 // device takes TSO frames with ECN
	NetFeatureMrgRxbuf  = 1 << 15 // a received frame may span buffers
	NetFeatureStatus    = 1 << 16 // config space has the link status

	// NetHeaderSize is struct virtio_net_hdr with num_buffers (5.1.6): the
	// only header a VERSION_1 device uses.
	NetHeaderSize = 12

	netHdrNumBuffers    = 10 // offset of num_buffers in the header
	netHdrFlagNeedsCsum = 1
	netGSONone          = 0
	netGSOTCPv4         = 1
	netGSOTCPv6         = 4
	netGSOECN           = 0x80

	// netMaxFrame is the largest Ethernet frame either way: a 64 KiB
	// GSO packet and its Ethernet header (with a VLAN tag).
	netMaxFrame = 65535 + 18
	netQueueMax = 256
	netRxQueue  = 0
	netTxQueue  = 1
	// netRxBatch frames are delivered before the driver is interrupted.
	netRxBatch = 64
	// netTxBurst frames at most are sent per pass over the transmit queue,
	// so received frames and a reset are served between passes however
	// fast the driver queues more.
	netTxBurst = 256

	// Config space (5.1.4).
	netCfgMAC      = 0
	netCfgStatus   = 6
	netCfgMaxPairs = 8
	netCfgSize     = 10
	netLinkUp      = 1
)

// NetBackend is the host side of a NIC: a non-blocking file descriptor on
// which each read returns one frame and each write sends one, every frame
// led by a NetHeaderSize virtio-net header (a TAP with IFF_VNET_HDR).
type NetBackend interface {
	Fd() int
	// SetOffload says which offloaded frames the backend may hand the
	// guest: those its driver negotiated.
	SetOffload(o NetOffloads) error
}

// TX frames that break the rules are dropped and counted, never sent.
var (
	ErrNetShortFrame = errors.New("virtio-net: frame shorter than its header")
	ErrNetLongFrame  = errors.New("virtio-net: frame longer than 64 KiB plus headers")
	ErrNetWritable   = errors.New("virtio-net: device-writable buffer in a transmit chain")
	ErrNetGSO        = errors.New("virtio-net: GSO type not negotiated or malformed")
	ErrNetCsum       = errors.New("virtio-net: checksum offsets outside the frame")
)

// NetStats counts a NIC's traffic.
type NetStats struct {
	TxFrames, TxBytes, TxDropped atomic.Uint64
	RxFrames, RxBytes, RxDropped atomic.Uint64
	RxStalls                     atomic.Uint64 // times RX waited for the driver to post buffers
	RxCopied                     atomic.Uint64 // frames read into govm and copied: too few buffers posted to read in place
	TxBackendErrs, RxBackendErrs atomic.Uint64
	Wakes                        atomic.Uint64 // times the loop slept and woke to work (frames per wake: batching)
	Yields                       atomic.Uint64 // times the loop, busy for long, went through Go's scheduler (osthread.Yielder)
}

// Net is a virtio-net device with one receive and one transmit queue,
// both served with its backend by one goroutine (Loop): a frame to send,
// a frame to receive and buffers posted for receiving all wake the same
// thread, which serves whatever is ready.
type Net struct {
	backend NetBackend
	mac     [6]byte
	Stats   NetStats

	mu        sync.Mutex // guards the fields below against Activate/Reset
	mem       *mem.Memory
	features  uint64
	rx, tx    *Queue
	interrupt func(q int)

	// The loop's own state.
	txHdr  [NetHeaderSize]byte // the header of the frame being sent, copied
	txIOV  *mem.IOVec          // that header, then the frame in guest memory
	rxIOV  *mem.IOVec          // the driver's buffers a frame is read into
	rxBuf  []byte              // a frame read for want of enough buffers
	rxLen  int                 // bytes in rxBuf waiting for guest buffers, 0 if none
	rxHeld []rxChain           // chains popped for frames to come, in ring order
}

// NewNet makes a NIC with the given MAC on a backend.
func NewNet(backend NetBackend, mac [6]byte) (*Net, error) {
	if mac[0]&1 != 0 {
		return nil, fmt.Errorf("MAC %x is a multicast address", mac)
	}
	return &Net{
		backend: backend, mac: mac,
		txIOV:  mem.NewIOVec(mem.IOVecMax),
		rxIOV:  mem.NewIOVec(mem.IOVecMax),
		rxBuf:  make([]byte, NetHeaderSize+netMaxFrame),
		rxHeld: make([]rxChain, 0, netQueueMax),
	}, nil
}

func (n *Net) Type() uint16 { return TypeNet }

func (n *Net) Features() uint64 {
	return FeatureVersion1 | FeatureEventIdx | FeatureIndirectDesc |
		NetFeatureCsum | NetFeatureGuestCsum | NetFeatureMAC | NetFeatureStatus |
		NetFeatureGuestTSO4 | NetFeatureGuestTSO6 | NetFeatureGuestECN |
		NetFeatureHostTSO4 | NetFeatureHostTSO6 | NetFeatureHostECN |
		NetFeatureMrgRxbuf
}

func (n *Net) NumQueues() int   { return 2 }
func (n *Net) QueueMax() uint16 { return netQueueMax }

func (n *Net) ReadConfig(off uint64, data []byte) {
	var cfg [netCfgSize]byte
	copy(cfg[netCfgMAC:], n.mac[:])
	binary.LittleEndian.PutUint16(cfg[netCfgStatus:], netLinkUp)
	binary.LittleEndian.PutUint16(cfg[netCfgMaxPairs:], 1)
	for i := range data {
		data[i] = 0
		if off+uint64(i) < netCfgSize {
			data[i] = cfg[off+uint64(i)]
		}
	}
}

// WriteConfig ignores writes: a VERSION_1 driver sets no field (5.1.4).
func (n *Net) WriteConfig(uint64, []byte) {}

// NetOffloads are the offloaded frames a backend may hand the guest:
// partial checksums, TCP segments of up to 64 KiB over IPv4 or IPv6, and
// those with ECN set (virtio 1.2, 5.1.6.4).
type NetOffloads struct {
	Csum, TSO4, TSO6, TSOECN bool
}

// guestOffloads maps the negotiated guest features to backend offloads;
// TSO is only handed over with partial checksums, as the driver requires
// (5.1.3.1).
func guestOffloads(features uint64) NetOffloads {
	if features&NetFeatureGuestCsum == 0 {
		return NetOffloads{}
	}
	o := NetOffloads{
		Csum: true,
		TSO4: features&NetFeatureGuestTSO4 != 0,
		TSO6: features&NetFeatureGuestTSO6 != 0,
	}
	o.TSOECN = (o.TSO4 || o.TSO6) && features&NetFeatureGuestECN != 0
	return o
}

func (n *Net) Activate(m *mem.Memory, features uint64, queues []*Queue, interrupt func(q int)) error {
	if len(queues) != 2 || queues[netRxQueue] == nil || queues[netTxQueue] == nil {
		return fmt.Errorf("virtio-net: the driver must enable both queues")
	}
	if err := n.backend.SetOffload(guestOffloads(features)); err != nil {
		return err
	}
	n.mu.Lock()
	n.mem, n.features, n.interrupt = m, features, interrupt
	n.rx, n.tx = queues[netRxQueue], queues[netTxQueue]
	n.rxLen = 0
	n.dropHeld()
	n.mu.Unlock()
	return nil
}

// Loop serves both queues and the backend until stop is signalled: it
// sends what the driver queued for transmission, moves received frames
// into the driver's buffers, and reads the backend only while it has
// somewhere to put a frame, so a driver that posts no buffers stops the
// reading (the backend queues or drops, as a full NIC would) and blocks
// nothing else. It returns an error when the driver broke a queue.
func (n *Net) Loop(kicks []int, stop int) error {
	n.mu.Lock()
	m, rxq, txq, features := n.mem, n.rx, n.tx, n.features
	n.mu.Unlock()
	if rxq == nil || txq == nil || len(kicks) != 2 || kicks[netRxQueue] < 0 || kicks[netTxQueue] < 0 {
		return errors.New("virtio-net: not active")
	}
	fd := n.backend.Fd()
	var drain [8]byte
	w, err := newReadyWaiter(stop, kicks[netRxQueue], kicks[netTxQueue], fd)
	if err != nil {
		slog.Warn("virtio-net: the NIC stops", "err", err)
		return nil
	}
	defer w.close()
	var y osthread.Yielder // the loop may run for long without parking
	// Serve whatever the driver queued before the loop started.
	txMore, rxMore, rxWait := true, true, false
	for {
		// With work in hand, look for new events and carry on; with none,
		// sleep until one comes. While a frame waits for buffers the
		// backend is not watched: only a kick can help.
		sleep := !txMore && (!rxMore || rxWait)
		if err := w.watch(fd, !rxWait); err != nil {
			slog.Warn("virtio-net: the NIC stops", "err", err)
			return nil
		}
		ready, err := w.poll(sleep)
		if err != nil {
			slog.Warn("virtio-net: wait; the NIC stops", "err", err)
			return nil
		}
		if sleep {
			n.Stats.Wakes.Add(1) // it slept, and something woke it
		}
		if w.parked() {
			y.Scheduled(time.Now())
		} else if y.Maybe(time.Now()) {
			n.Stats.Yields.Add(1)
		}
		for _, ev := range ready {
			switch int(ev.Fd) {
			case stop:
				return nil
			case kicks[netRxQueue]:
				_, _ = unix.Read(kicks[netRxQueue], drain[:])
				rxWait, rxMore = false, true
			case kicks[netTxQueue]:
				_, _ = unix.Read(kicks[netTxQueue], drain[:])
				txMore = true
			case fd:
				if ev.Events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
					slog.Warn("virtio-net: the backend failed; the NIC stops", "events", ev.Events)
					return nil
				}
				rxMore = true
			}
		}
		if txMore {
			more, err := n.transmit(m, txq)
			if err != nil {
				return err
			}
			txMore = more
		}
		if rxMore && !rxWait {
			delivered, wait, err := n.receiveBatch(m, rxq, features, fd)
			if err != nil {
				return err
			}
			if wait {
				n.Stats.RxStalls.Add(1)
			}
			// After a delivery, look once more before sleeping: the
			// next frame is often on its way, and a sleep and wake
			// cost more than the look (BenchmarkNetReceive).
			rxWait, rxMore = wait, delivered > 0
		}
	}
}

// transmit sends up to netTxBurst frames queued on the transmit queue. It
// reports whether more wait; if none does, the driver is asked to kick on
// its next frame.
func (n *Net) transmit(m *mem.Memory, q *Queue) (bool, error) {
	old := q.UsedIdx()
	more := false
	for sent := 0; ; {
		for ; sent < netTxBurst; sent++ {
			head, chain, ok, err := q.Pop(m)
			if err != nil {
				return false, err
			}
			if !ok {
				break
			}
			payload, err := txFrame(m, chain, &n.txHdr, n.txIOV, n.features)
			if err != nil {
				n.Stats.TxDropped.Add(1)
				slog.Debug("virtio-net: TX frame dropped", "err", err)
			} else if _, err := n.txIOV.Writev(n.backend.Fd()); err != nil {
				n.Stats.TxBackendErrs.Add(1)
				n.Stats.TxDropped.Add(1)
			} else {
				n.Stats.TxFrames.Add(1)
				n.Stats.TxBytes.Add(uint64(payload))
			}
			if err := q.PushUsed(m, head, 0); err != nil {
				return false, err
			}
		}
		if sent == netTxBurst && q.HasAvailable(m) {
			// Leave the kick off: the loop comes back.
			more = true
			break
		}
		q.SetAvailEvent(m)
		if !q.HasAvailable(m) {
			break
		}
	}
	if q.UsedIdx() != old && q.NeedsInterrupt(m, old) {
		n.interrupt(netTxQueue)
	}
	return more, nil
}

// txFrame prepares a transmit chain for one writev: the virtio-net header
// is copied into hdr and checked there, so what is checked is what is
// sent even if the driver rewrites it meanwhile; the frame after it goes
// from guest memory as it is (the driver only races itself there). iov
// ends up holding the copy, then the guest buffers. It returns the
// frame's length without the header, or why it must be dropped.
func txFrame(m *mem.Memory, chain []Desc, hdr *[NetHeaderSize]byte, iov *mem.IOVec, features uint64) (int, error) {
	iov.Reset()
	if err := iov.AddHost(hdr[:]); err != nil {
		return 0, err
	}
	total := uint64(0)
	for _, d := range chain {
		if d.Write {
			return 0, ErrNetWritable
		}
		if total+uint64(d.Len) > NetHeaderSize+netMaxFrame {
			return 0, ErrNetLongFrame
		}
		addr, l := d.Addr, uint64(d.Len)
		if total < NetHeaderSize {
			c := min(l, NetHeaderSize-total)
			if err := m.ReadAt(hdr[total:total+c], addr); err != nil {
				return 0, err
			}
			addr, l, total = addr+c, l-c, total+c
		}
		if err := iov.Add(m, addr, l); err != nil {
			if errors.Is(err, mem.ErrIOVecFull) {
				return 0, ErrNetLongFrame // no driver splits 64 KiB into 1024 buffers
			}
			return 0, err
		}
		total += l
	}
	if total < NetHeaderSize {
		return 0, ErrNetShortFrame
	}
	payload := int(total - NetHeaderSize)
	if err := checkTxHeader(hdr, payload, features); err != nil {
		return 0, err
	}
	return payload, nil
}

// CheckTxHeader checks a transmit frame's virtio-net header against the
// negotiated features (5.1.6.2): a GSO type the device did not offer, a
// zero segment size, or checksum offsets past the frame make it invalid.
func CheckTxHeader(frame []byte, features uint64) error {
	if len(frame) < NetHeaderSize {
		return ErrNetShortFrame
	}
	return checkTxHeader((*[NetHeaderSize]byte)(frame), len(frame)-NetHeaderSize, features)
}

// checkTxHeader checks a header for a frame of payload bytes after it.
func checkTxHeader(hdr *[NetHeaderSize]byte, payload int, features uint64) error {
	flags, gso := hdr[0], hdr[1]
	gsoSize := binary.LittleEndian.Uint16(hdr[4:])
	csumStart := binary.LittleEndian.Uint16(hdr[6:])
	csumOff := binary.LittleEndian.Uint16(hdr[8:])
	if gso != netGSONone {
		want := uint64(0)
		switch gso &^ netGSOECN {
		case netGSOTCPv4:
			want = NetFeatureHostTSO4
		case netGSOTCPv6:
			want = NetFeatureHostTSO6
		default:
			return fmt.Errorf("%w: type %#x", ErrNetGSO, gso)
		}
		if gso&netGSOECN != 0 {
			want |= NetFeatureHostECN
		}
		if features&want != want || gsoSize == 0 || flags&netHdrFlagNeedsCsum == 0 {
			return fmt.Errorf("%w: type %#x, size %d, flags %#x", ErrNetGSO, gso, gsoSize, flags)
		}
	}
	if flags&netHdrFlagNeedsCsum != 0 {
		if features&NetFeatureCsum == 0 || int(csumStart)+int(csumOff)+2 > payload {
			return fmt.Errorf("%w: start %d, offset %d, frame %d", ErrNetCsum, csumStart, csumOff, payload)
		}
	}
	if payload > netMaxFrame {
		return ErrNetLongFrame
	}
	return nil
}

// receiveBatch delivers up to netRxBatch frames. It reports how many it
// delivered and whether it stopped for want of guest buffers.
func (n *Net) receiveBatch(m *mem.Memory, q *Queue, features uint64, fd int) (int, bool, error) {
	old := q.UsedIdx()
	delivered := 0
	defer func() {
		if q.UsedIdx() != old && q.NeedsInterrupt(m, old) {
			n.interrupt(netRxQueue)
		}
	}()
	for delivered < netRxBatch {
		if n.rxLen == 0 {
			if len(n.rxHeld) == 0 && !q.HasAvailable(m) {
				// Ask for a kick on the next buffer, then look again so a
				// buffer posted in between is not missed.
				q.SetAvailEvent(m)
				if !q.HasAvailable(m) {
					return delivered, true, nil
				}
			}
			res, err := n.receiveDirect(m, q, features, fd)
			if err != nil {
				return delivered, false, err
			}
			switch res {
			case rxDelivered:
				delivered++
				continue
			case rxDropped:
				n.Stats.RxDropped.Add(1)
				continue
			case rxEmpty:
				return delivered, false, nil
			}
			// rxWait: too few buffers for the largest frame; read it here
			// and hand over what fits.
			r, err := unix.Read(fd, n.rxBuf)
			if err != nil {
				if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
					n.Stats.RxBackendErrs.Add(1)
				}
				return delivered, false, nil
			}
			if r < NetHeaderSize {
				n.Stats.RxDropped.Add(1)
				continue
			}
			n.rxLen = r
			n.Stats.RxCopied.Add(1)
		}
		res, err := n.deliver(m, q, features, n.rxBuf[:n.rxLen])
		if err != nil {
			return delivered, false, err
		}
		switch res {
		case rxWait:
			// Not enough buffers for this frame: the driver must kick
			// on its next buffer, not on one already posted.
			if q.ArmNextAvail(m) {
				continue
			}
			return delivered, true, nil
		case rxDelivered:
			delivered++
		case rxDropped:
			n.Stats.RxDropped.Add(1)
		}
		n.rxLen = 0
	}
	return delivered, false, nil
}

// The driver errors both receive paths report (the transport then asks
// for a reset).
var errNetReadableRx = errors.New("virtio-net: device-readable buffer in a receive chain")

// errNetShortRxHeader: the header sits whole in the first buffer
// (5.1.6.3.1).
func errNetShortRxHeader(n uint32) error {
	return fmt.Errorf("virtio-net: first receive buffer of %d bytes cannot hold the header", n)
}

// rxResult is what became of a frame deliver was given.
type rxResult int

const (
	rxDelivered rxResult = iota // in the driver's buffers
	rxWait                      // not enough buffers posted; nothing used
	rxDropped                   // could never fit; the buffers are kept
	rxEmpty                     // the backend had no frame; nothing used
)

// rxChain is a receive chain the device holds for the next frames.
type rxChain struct {
	head     uint16
	room     uint32 // bytes the chain holds
	iovs     int    // its buffers in rxIOV
	first    uint64 // its first buffer, where a frame's header would go
	firstLen uint32
}

// rxNeed is what receiveDirect holds before reading: room for the largest
// frame and its header.
const rxNeed = NetHeaderSize + netMaxFrame

// Receiving has one path with two ways to fill it. The device holds
// posted chains (rxHeld, their buffers in rxIOV) until they have room for
// what is to come (holdChains), fills them, and hands the chains the
// frame reached to the driver (commitHeld). receiveDirect holds room for
// the largest frame and reads the backend straight into the driver's
// buffers, with no copy in govm; where the driver has posted less than
// that, the frame is read into rxBuf and deliver holds room for it alone
// and copies it in.

// holdChains pops receive chains onto rxHeld until they hold need bytes.
// It returns rxDelivered once they do; rxWait when the driver has not
// posted that much yet; rxDropped when need can never be held (beyond one
// chain without MRG_RXBUF, beyond the whole ring, or in more buffers than
// one readv takes). Unless it returns rxDelivered it holds nothing.
func (n *Net) holdChains(m *mem.Memory, q *Queue, mergeable bool, need uint64) (rxResult, error) {
	iov := n.rxIOV
	for iov.Bytes() < need {
		if len(n.rxHeld) == 1 && !mergeable || len(n.rxHeld) == int(q.Size) {
			n.releaseHeld(q)
			return rxDropped, nil
		}
		head, chain, ok, err := q.Pop(m)
		if err != nil {
			return rxWait, err
		}
		if !ok {
			n.releaseHeld(q)
			return rxWait, nil
		}
		c := rxChain{head: head, iovs: iov.Len()}
		before := iov.Bytes()
		for i, d := range chain {
			if !d.Write {
				return rxWait, errNetReadableRx
			}
			if i == 0 {
				c.first, c.firstLen = d.Addr, d.Len
			}
			if err := iov.Add(m, d.Addr, uint64(d.Len)); err != nil {
				if errors.Is(err, mem.ErrIOVecFull) {
					q.Unpop(1)
					n.releaseHeld(q)
					return rxDropped, nil
				}
				return rxWait, err
			}
		}
		c.room, c.iovs = uint32(iov.Bytes()-before), iov.Len()-c.iovs
		n.rxHeld = append(n.rxHeld, c)
	}
	if n.rxHeld[0].firstLen < NetHeaderSize {
		return rxWait, errNetShortRxHeader(n.rxHeld[0].firstLen)
	}
	return rxDelivered, nil
}

// commitHeld hands the driver a frame of r bytes (header included) that
// fills the held chains in order: num_buffers in the header, then each
// chain the frame reached as used. The chains it did not reach stay held
// for the next frame.
func (n *Net) commitHeld(m *mem.Memory, q *Queue, r int) error {
	used, left, iovs := 0, uint32(r), 0
	for left > 0 && used < len(n.rxHeld) {
		c := &n.rxHeld[used]
		c.room = min(c.room, left)
		left -= c.room
		iovs += c.iovs
		used++
	}
	// num_buffers: 1 without MRG_RXBUF (5.1.6.4).
	if err := m.PutUint16(n.rxHeld[0].first+netHdrNumBuffers, uint16(used)); err != nil {
		return err
	}
	for _, c := range n.rxHeld[:used] {
		if err := q.PushUsed(m, c.head, c.room); err != nil {
			return err
		}
	}
	n.rxHeld = n.rxHeld[:copy(n.rxHeld, n.rxHeld[used:])]
	n.rxIOV.DropFront(iovs)
	n.Stats.RxFrames.Add(1)
	n.Stats.RxBytes.Add(uint64(r - NetHeaderSize))
	return nil
}

// receiveDirect reads one frame from the backend straight into the
// driver's buffers, holding room for the largest frame: with MRG_RXBUF as
// many chains as that takes, otherwise one. If the driver has not posted
// that much it returns rxWait, holding nothing, and the caller copies.
// Between calls the device holds no chain or enough.
func (n *Net) receiveDirect(m *mem.Memory, q *Queue, features uint64, fd int) (rxResult, error) {
	res, err := n.holdChains(m, q, features&NetFeatureMrgRxbuf != 0, rxNeed)
	if err != nil || res != rxDelivered {
		return rxWait, err
	}
	r, err := n.rxIOV.Readv(fd)
	if err != nil {
		if !errors.Is(err, unix.EAGAIN) {
			n.Stats.RxBackendErrs.Add(1)
		}
		return rxEmpty, nil
	}
	if r < NetHeaderSize {
		return rxDropped, nil // the held chains serve the next frame
	}
	return rxDelivered, n.commitHeld(m, q, r)
}

// releaseHeld gives the held chains back to the ring: the next Pop
// returns them again.
func (n *Net) releaseHeld(q *Queue) {
	q.Unpop(len(n.rxHeld))
	n.dropHeld()
}

// dropHeld forgets the held chains (the queue is being reset).
func (n *Net) dropHeld() {
	n.rxHeld = n.rxHeld[:0]
	n.rxIOV.Reset()
}

// deliver copies one frame (header first) into the driver's receive
// buffers: with MRG_RXBUF into as many chains as it takes, otherwise into
// one, and a frame too big for that is dropped (rxDropped; the chains stay
// posted for the next frame). If the driver has not posted enough
// buffers, nothing is used and the frame waits (rxWait).
func (n *Net) deliver(m *mem.Memory, q *Queue, features uint64, frame []byte) (rxResult, error) {
	res, err := n.holdChains(m, q, features&NetFeatureMrgRxbuf != 0, uint64(len(frame)))
	if err != nil || res != rxDelivered {
		return res, err
	}
	off := 0
	for i := 0; i < n.rxIOV.Len() && off < len(frame); i++ {
		off += copy(n.rxIOV.Buffer(i), frame[off:])
	}
	return rxDelivered, n.commitHeld(m, q, len(frame))
}

func (n *Net) Reset() {
	n.mu.Lock()
	n.rx, n.tx, n.mem, n.features, n.rxLen = nil, nil, nil, 0, 0
	n.dropHeld()
	n.mu.Unlock()
	if err := n.backend.SetOffload(NetOffloads{}); err != nil {
		slog.Debug("virtio-net: clearing offloads", "err", err)
	}
}
