// Package framesock carries a NIC's Ethernet frames over AF_UNIX
// sockets. A SOCK_SEQPACKET socket keeps one frame per message, as a TAP
// does, so the device reads and writes it with the same single readv or
// writev straight from guest memory; Pair makes such a pair for a
// network served by another process. DialStream reaches a switch that
// speaks QEMU's stream protocol (passt, gvproxy: a 4-byte big-endian
// length, then the frame) through a relay, since a byte stream cannot be
// read one frame per call. It knows nothing of virtqueues.
package framesock

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

const (
	// MaxFrame is the longest frame carried: a 64 KiB IP packet and an
	// Ethernet header with a VLAN tag.
	MaxFrame = 65535 + 18
	// MinFrame is the shortest: an Ethernet header (IEEE 802.3 3.1.1).
	MinFrame = 14
	// sockBuf is each socket's send and receive buffer: a few of the
	// largest frames in flight, so neither side waits on every frame.
	sockBuf = 4 << 20
	// streamLen is the stream protocol's length prefix.
	streamLen = 4
)

// Pair makes a connected SOCK_SEQPACKET pair, close-on-exec and
// non-blocking, with room for frames in flight: local is the device's
// end, a bare descriptor it polls itself; remote is for whoever serves
// the network (a File on Go's poller, or passed to another process).
func Pair() (local int, remote *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socketpair: %w", err)
	}
	for _, fd := range fds {
		SetBuffers(fd)
	}
	return fds[0], os.NewFile(uintptr(fds[1]), "frames"), nil
}

// SetBuffers sizes a frame socket's buffers; the kernel caps them at
// net.core.[rw]mem_max, which is what an unprivileged process gets.
func SetBuffers(fd int) {
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBuf)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockBuf)
}

// Relay joins the local end of a frame pair to a stream-protocol switch.
type Relay struct {
	Local  int // the device's end: one frame per message
	peer   *os.File
	stream net.Conn
	wg     sync.WaitGroup
	once   sync.Once
}

// ErrStreamFrame is a length on the stream no frame can have: the stream
// cannot be resynchronised after it, so the relay stops.
var ErrStreamFrame = errors.New("stream switch sent a frame length out of range")

// DialStream connects to the stream-protocol switch listening on the
// unix socket path and relays frames both ways until Close or until
// either side closes.
func DialStream(path string) (*Relay, error) {
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, fmt.Errorf("switch %s: %w", path, err)
	}
	local, peer, err := Pair()
	if err != nil {
		c.Close()
		return nil, err
	}
	r := &Relay{Local: local, peer: peer, stream: c}
	r.wg.Add(2)
	go r.run("to switch", r.up)
	go r.run("from switch", r.down)
	return r, nil
}

func (r *Relay) run(what string, f func() error) {
	defer r.wg.Done()
	if err := f(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, os.ErrClosed) {
		slog.Warn("framesock: relay stops", "dir", what, "err", err)
	}
	r.shut()
}

// up sends each frame the device wrote to the switch, length first.
func (r *Relay) up() error {
	buf := make([]byte, streamLen+MaxFrame)
	for {
		n, err := r.peer.Read(buf[streamLen:])
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		binary.BigEndian.PutUint32(buf, uint32(n))
		if _, err := r.stream.Write(buf[:streamLen+n]); err != nil {
			return err
		}
	}
}

// down hands each frame from the switch to the device, one per message;
// the write blocks while the device's receive buffer is full, so a guest
// that posts no buffers holds the switch back rather than losing frames.
// Runts are skipped.
func (r *Relay) down() error {
	in := bufio.NewReaderSize(r.stream, 256<<10)
	buf := make([]byte, MaxFrame)
	var hdr [streamLen]byte
	for {
		if _, err := io.ReadFull(in, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n > MaxFrame {
			return fmt.Errorf("%w: %d", ErrStreamFrame, n)
		}
		if _, err := io.ReadFull(in, buf[:n]); err != nil {
			return err
		}
		if n < MinFrame {
			continue
		}
		if _, err := r.peer.Write(buf[:n]); err != nil {
			return err
		}
	}
}

// shut closes the relay's own ends: the device sees its link hang up.
func (r *Relay) shut() {
	r.once.Do(func() {
		r.stream.Close()
		r.peer.Close()
	})
}

// Close stops the relay and closes both ends, the device's included.
func (r *Relay) Close() error {
	r.shut()
	r.wg.Wait()
	return unix.Close(r.Local)
}
