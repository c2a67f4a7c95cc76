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
	NetFeatureMTU       = 1 << 3  // config space has the link's MTU
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

	netHdrNumBuffers = 10 // offset of num_buffers in the header
	// netEthHeader is the shortest frame sent: an Ethernet header
	// (destination, source, type; IEEE 802.3 3.1.1).
	netEthHeader        = 14
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
	netCfgMTU      = 10
	netCfgSize     = 12
	// NetMinMTU is the least MTU a device may offer: 68, the least an
	// IPv4 link may have (RFC 791), below which Linux's virtio_net
	// refuses the device.
	NetMinMTU = 68
	netLinkUp = 1
)

// NetBackend is the host side of a NIC: a non-blocking file descriptor on
// which each read returns one frame and each write sends one (a TAP, one
// end of a SOCK_SEQPACKET pair).
type NetBackend interface {
	Fd() int
	// Caps says how frames travel on Fd; it does not change.
	Caps() NetBackendCaps
	// SetOffload says which offloaded frames the backend may hand the
	// guest: those its driver negotiated. Only called with offloads when
	// Caps().VnetHeader is set.
	SetOffload(o NetOffloads) error
}

// NetBackendCaps is what a backend does with frames.
type NetBackendCaps struct {
	// VnetHeader: every frame both ways is led by a NetHeaderSize
	// virtio-net header (a TAP with IFF_VNET_HDR), so checksum and
	// segmentation offloads pass through. Without it frames are bare
	// Ethernet: no offload is offered, and the device writes the guest's
	// receive header itself.
	VnetHeader bool
	// MTU, if set, is offered to the driver (VIRTIO_NET_F_MTU): the
	// largest IP packet the link carries, NetMinMTU to 65535.
	MTU uint16
}

// TX frames that break the rules are dropped and counted, never sent.
var (
	ErrNetShortFrame = errors.New("virtio-net: frame shorter than its headers")
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
	TxStalls                     atomic.Uint64 // times TX waited for room in the backend
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
	caps    NetBackendCaps
	// rxSkip is the header the device writes itself before each received
	// frame: NetHeaderSize for a bare-Ethernet backend, else 0.
	rxSkip int
	mac    [6]byte
	Stats  NetStats

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
	// rxSkipped: rxIOV starts past rxHeld[0]'s header (bare backends).
	rxSkipped bool
}

// NewNet makes a NIC with the given MAC on a backend.
func NewNet(backend NetBackend, mac [6]byte) (*Net, error) {
	if mac[0]&1 != 0 {
		return nil, fmt.Errorf("MAC %x is a multicast address", mac)
	}
	caps := backend.Caps()
	if caps.MTU != 0 && caps.MTU < NetMinMTU {
		return nil, fmt.Errorf("virtio-net: MTU %d below %d", caps.MTU, NetMinMTU)
	}
	skip := 0
	if !caps.VnetHeader {
		skip = NetHeaderSize
	}
	return &Net{
		backend: backend, mac: mac, caps: caps, rxSkip: skip,
		txIOV:  mem.NewIOVec(mem.IOVecMax),
		rxIOV:  mem.NewIOVec(mem.IOVecMax),
		rxBuf:  make([]byte, NetHeaderSize+netMaxFrame),
		rxHeld: make([]rxChain, 0, netQueueMax),
	}, nil
}

func (n *Net) Type() uint16 { return TypeNet }

// Features offers the offloads only over a backend that carries the
// virtio-net header: a bare-Ethernet backend could neither complete a
// partial checksum nor segment without govm copying every frame, while
// the guest's stack folds the checksum into the copy it makes anyway.
func (n *Net) Features() uint64 {
	f := uint64(FeatureVersion1 | FeatureEventIdx | FeatureIndirectDesc |
		NetFeatureMAC | NetFeatureStatus | NetFeatureMrgRxbuf)
	if n.caps.VnetHeader {
		f |= NetFeatureCsum | NetFeatureGuestCsum |
			NetFeatureGuestTSO4 | NetFeatureGuestTSO6 | NetFeatureGuestECN |
			NetFeatureHostTSO4 | NetFeatureHostTSO6 | NetFeatureHostECN
	}
	if n.caps.MTU != 0 {
		f |= NetFeatureMTU
	}
	return f
}

func (n *Net) NumQueues() int   { return 2 }
func (n *Net) QueueMax() uint16 { return netQueueMax }

func (n *Net) ReadConfig(off uint64, data []byte) {
	var cfg [netCfgSize]byte
	copy(cfg[netCfgMAC:], n.mac[:])
	binary.LittleEndian.PutUint16(cfg[netCfgStatus:], netLinkUp)
	binary.LittleEndian.PutUint16(cfg[netCfgMaxPairs:], 1)
	binary.LittleEndian.PutUint16(cfg[netCfgMTU:], n.caps.MTU)
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
	if n.caps.VnetHeader {
		if err := n.backend.SetOffload(guestOffloads(features)); err != nil {
			return err
		}
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
	txMore, rxMore, rxWait, txWait := true, true, false, false
	for {
		// With work in hand, look for new events and carry on; with none,
		// sleep until one comes. While a frame waits for buffers the
		// backend is not watched for input: only a kick can help; while
		// a frame waits for room in the backend, it is watched for that.
		sleep := (!txMore || txWait) && (!rxMore || rxWait)
		if err := w.watch(fd, !rxWait, txWait); err != nil {
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
				if ev.Events&unix.EPOLLOUT != 0 {
					txWait, txMore = false, true
				}
				if ev.Events&unix.EPOLLIN != 0 {
					rxMore = true
				}
			}
		}
		if txMore && !txWait {
			more, full, err := n.transmit(m, txq)
			if err != nil {
				return err
			}
			txMore, txWait = more || full, full
			if full {
				n.Stats.TxStalls.Add(1)
			}
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

func (n *Net) Reset() {
	n.mu.Lock()
	n.rx, n.tx, n.mem, n.features, n.rxLen = nil, nil, nil, 0, 0
	n.dropHeld()
	n.mu.Unlock()
	if !n.caps.VnetHeader {
		return
	}
	if err := n.backend.SetOffload(NetOffloads{}); err != nil {
		slog.Debug("virtio-net: clearing offloads", "err", err)
	}
}
