package virtio

import (
	"errors"
	"fmt"

	"github.com/govm/govm/mem"
	"golang.org/x/sys/unix"
)

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
			if r < n.rxMinRead() {
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

// The driver errors holdChains reports (the transport then asks
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
		if err := n.skipHeader(); err != nil {
			return rxWait, err
		}
	}
	if err := n.skipHeader(); err != nil {
		return rxWait, err
	}
	return rxDelivered, nil
}

// skipHeader checks that the first held chain's first buffer holds the
// header and, for a bare-Ethernet backend, starts rxIOV past it: the
// device writes that header itself, the backend's frame goes after it.
func (n *Net) skipHeader() error {
	if len(n.rxHeld) == 0 || n.rxSkipped {
		return nil
	}
	c := &n.rxHeld[0]
	if c.firstLen < NetHeaderSize {
		return errNetShortRxHeader(c.firstLen)
	}
	if n.rxSkip > 0 {
		n.rxIOV.Advance(n.rxSkip)
		c.room -= uint32(n.rxSkip)
		if c.firstLen == uint32(n.rxSkip) {
			c.iovs-- // the buffer held the header alone
		}
	}
	n.rxSkipped = true
	return nil
}

// rxMinRead is the shortest read from the backend that is a frame: its
// header, if it sends one, and an Ethernet header.
func (n *Net) rxMinRead() int {
	return NetHeaderSize - n.rxSkip + netEthHeader
}

// commitHeld hands the driver a frame of r bytes, as read into rxIOV,
// that fills the held chains in order: the header (written whole for a
// bare-Ethernet backend, else its num_buffers), then each chain the frame
// reached as used. The chains it did not reach stay held for the next
// frame.
func (n *Net) commitHeld(m *mem.Memory, q *Queue, r int) error {
	used, left, iovs := 0, uint32(r), 0
	for left > 0 && used < len(n.rxHeld) {
		c := &n.rxHeld[used]
		c.room = min(c.room, left)
		left -= c.room
		iovs += c.iovs
		used++
	}
	hdr := n.rxHeld[0].first
	if n.rxSkip > 0 {
		// No flags, no GSO: the frame is whole and checksummed (5.1.6.4).
		if err := m.PutUint64(hdr, 0); err != nil {
			return err
		}
		if err := m.PutUint16(hdr+8, 0); err != nil {
			return err
		}
		n.rxHeld[0].room += uint32(n.rxSkip)
	}
	// num_buffers: 1 without MRG_RXBUF (5.1.6.4).
	if err := m.PutUint16(hdr+netHdrNumBuffers, uint16(used)); err != nil {
		return err
	}
	for _, c := range n.rxHeld[:used] {
		if err := q.PushUsed(m, c.head, c.room); err != nil {
			return err
		}
	}
	n.rxHeld = n.rxHeld[:copy(n.rxHeld, n.rxHeld[used:])]
	n.rxIOV.DropFront(iovs)
	n.rxSkipped = false
	n.Stats.RxFrames.Add(1)
	n.Stats.RxBytes.Add(uint64(r + n.rxSkip - NetHeaderSize))
	return nil
}

// receiveDirect reads one frame from the backend straight into the
// driver's buffers, holding room for the largest frame: with MRG_RXBUF as
// many chains as that takes, otherwise one. If the driver has not posted
// that much it returns rxWait, holding nothing, and the caller copies.
// Between calls the device holds no chain or enough.
func (n *Net) receiveDirect(m *mem.Memory, q *Queue, features uint64, fd int) (rxResult, error) {
	res, err := n.holdChains(m, q, features&NetFeatureMrgRxbuf != 0, uint64(rxNeed-n.rxSkip))
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
	if r < n.rxMinRead() {
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
	n.rxSkipped = false
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
