package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/mem"
)

// Transmitting: frames the driver queued go to the backend with one
// writev each, the header copied and checked, the rest from guest memory.

// transmit sends up to netTxBurst frames queued on the transmit queue. It
// reports whether more wait, and whether the backend had no room for the
// next frame (full: that frame stays queued, to be sent once there is
// room, so a slower backend slows the guest rather than losing frames);
// if none waits, the driver is asked to kick on its next frame.
func (n *Net) transmit(m *mem.Memory, q *Queue) (more, full bool, err error) {
	old := q.UsedIdx()
	defer func() {
		if q.UsedIdx() != old && q.NeedsInterrupt(m, old) {
			n.interrupt(netTxQueue)
		}
	}()
	for sent := 0; ; {
		for ; sent < netTxBurst; sent++ {
			head, chain, ok, err := q.Pop(m)
			if err != nil {
				return false, false, err
			}
			if !ok {
				break
			}
			payload, err := txFrame(m, chain, &n.txHdr, n.txIOV, n.features, n.caps.VnetHeader)
			if err != nil {
				n.Stats.TxDropped.Add(1)
				slog.Debug("virtio-net: TX frame dropped", "err", err)
			} else if _, err := n.txIOV.Writev(n.backend.Fd()); err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOBUFS) {
					q.Unpop(1)
					return false, true, nil
				}
				n.Stats.TxBackendErrs.Add(1)
				n.Stats.TxDropped.Add(1)
			} else {
				n.Stats.TxFrames.Add(1)
				n.Stats.TxBytes.Add(uint64(payload))
			}
			if err := q.PushUsed(m, head, 0); err != nil {
				return false, false, err
			}
		}
		if sent == netTxBurst && q.HasAvailable(m) {
			// Leave the kick off: the loop comes back.
			return true, false, nil
		}
		q.SetAvailEvent(m)
		if !q.HasAvailable(m) {
			return false, false, nil
		}
	}
}

// txFrame prepares a transmit chain for one writev: the virtio-net header
// is copied into hdr and checked there, so what is checked is what is
// sent even if the driver rewrites it meanwhile; the frame after it goes
// from guest memory as it is (the driver only races itself there). iov
// ends up holding the copy (if the backend takes headers: withHdr), then
// the guest buffers. It returns the frame's length without the header,
// or why it must be dropped.
func txFrame(m *mem.Memory, chain []Desc, hdr *[NetHeaderSize]byte, iov *mem.IOVec, features uint64, withHdr bool) (int, error) {
	iov.Reset()
	if withHdr {
		if err := iov.AddHost(hdr[:]); err != nil {
			return 0, err
		}
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
	if payload < netEthHeader {
		return ErrNetShortFrame
	}
	return nil
}
