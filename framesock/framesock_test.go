package framesock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// streamSwitch is a one-member stream-protocol switch on a real unix
// socket: the test reads and writes its side of the stream.
func streamSwitch(t *testing.T) (*Relay, net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sw.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r, err := DialStream(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); c.Close() })
	return r, c
}

func frame(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i) ^ seed
	}
	return b
}

func streamWrite(t *testing.T, c net.Conn, f []byte) {
	t.Helper()
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], uint32(len(f)))
	if _, err := c.Write(append(h[:], f...)); err != nil {
		t.Fatal(err)
	}
}

// recvLocal reads one message from the device's end, waiting up to a
// second; nil if none came.
func recvLocal(t *testing.T, fd int) []byte {
	t.Helper()
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, _ := unix.Poll(pfd, 1000); n == 0 {
		return nil
	}
	buf := make([]byte, MaxFrame+1)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func TestRelayBothWays(t *testing.T) {
	r, c := streamSwitch(t)
	for _, n := range []int{MinFrame, 1514, MaxFrame} {
		f := frame(n, byte(n))
		if _, err := unix.Write(r.Local, f); err != nil {
			t.Fatal(err)
		}
		var h [4]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, binary.BigEndian.Uint32(h[:]))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f) {
			t.Fatalf("to switch: %d bytes arrived for a %d-byte frame", len(got), n)
		}
		streamWrite(t, c, f)
		if got := recvLocal(t, r.Local); !bytes.Equal(got, f) {
			t.Fatalf("from switch: %d bytes arrived for a %d-byte frame", len(got), n)
		}
	}
}

// TestRelayRunts: frames shorter than an Ethernet header from the switch
// are skipped and the stream stays in step.
func TestRelayRunts(t *testing.T) {
	r, c := streamSwitch(t)
	streamWrite(t, c, nil)
	streamWrite(t, c, frame(MinFrame-1, 1))
	good := frame(60, 2)
	streamWrite(t, c, good)
	if got := recvLocal(t, r.Local); !bytes.Equal(got, good) {
		t.Fatalf("got %d bytes, want the 60-byte frame after the runts", len(got))
	}
}

// TestRelayOversized: a length no frame has stops the relay, and the
// device's end sees the link hang up.
func TestRelayOversized(t *testing.T) {
	r, c := streamSwitch(t)
	var h [4]byte
	binary.BigEndian.PutUint32(h[:], MaxFrame+1)
	if _, err := c.Write(h[:]); err != nil {
		t.Fatal(err)
	}
	pfd := []unix.PollFd{{Fd: int32(r.Local), Events: unix.POLLIN}}
	if n, _ := unix.Poll(pfd, 2000); n == 0 || pfd[0].Revents&unix.POLLHUP == 0 {
		t.Fatalf("device end not hung up: revents %#x", pfd[0].Revents)
	}
}

// TestRelayBackpressure: while the device reads nothing, frames from the
// switch wait (the switch's writes block) and none is lost; once it
// reads, all arrive in order.
func TestRelayBackpressure(t *testing.T) {
	r, c := streamSwitch(t)
	const frames = 400 // 400 x 64 KiB is well past every buffer on the way
	done := make(chan error, 1)
	go func() {
		for i := range frames {
			var h [4]byte
			f := frame(65000, byte(i))
			binary.BigEndian.PutUint32(h[:], uint32(len(f)))
			if _, err := c.Write(append(h[:], f...)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		t.Fatalf("the switch wrote all %d frames with the device reading none (err %v)", frames, err)
	case <-time.After(300 * time.Millisecond):
	}
	for i := range frames {
		got := recvLocal(t, r.Local)
		if !bytes.Equal(got, frame(65000, byte(i))) {
			t.Fatalf("frame %d: %d bytes, not the one sent", i, len(got))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestDialStreamMissing(t *testing.T) {
	_, err := DialStream(filepath.Join(t.TempDir(), "none.sock"))
	if !errors.Is(err, unix.ENOENT) {
		t.Fatalf("got %v, want ENOENT", err)
	}
}
