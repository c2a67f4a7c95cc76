package usernet

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// HelperArg, as the first argument, makes a helper executable (govm-net,
// or a test binary) serve a user network with the server package.
const HelperArg = "__usernet"

// The helper's inherited descriptors.
const (
	HelperMemberFd   = 3 // the first member's frame socket
	HelperListenerFd = 4 // the switch's listening socket, with Switch set
)

// JoinTimeout bounds the wait for a join request or its answer.
const JoinTimeout = 10 * time.Second

// A member joins the network with one message on its frame socket before
// any frame: a JSON join request; the network answers with one JSON
// reply. Frames follow, one per message. Both messages fit one
// SOCK_SEQPACKET message (maxMsg).
const maxMsg = 64 << 10

// JoinRequest is what a member asks for.
type JoinRequest struct {
	MAC      string
	Forwards []Forward
	// Net, DNS and MTU are the member's options; those it set must be
	// the network's.
	Opts Options
}

// JoinReply is the network's answer: the member's address and the link's
// layout, or why it may not join.
type JoinReply struct {
	Error   string `json:",omitempty"`
	IP      netip.Addr
	Net     netip.Prefix
	Gateway netip.Addr
	DNS     netip.Addr
	MTU     int
}

// SendMsg writes v as one message.
func SendMsg(f io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxMsg {
		return fmt.Errorf("usernet: message of %d bytes", len(b))
	}
	_, err = f.Write(b)
	return err
}

// RecvMsg reads one message into v.
func RecvMsg(f io.Reader, v any) error {
	b := make([]byte, maxMsg)
	n, err := f.Read(b)
	if err != nil {
		return err
	}
	return json.Unmarshal(b[:n], v)
}

// msgFd is a member's non-blocking SOCK_SEQPACKET descriptor, as
// SendMsg and RecvMsg use it: each read or write one message; a read of
// nothing is the peer's end.
type msgFd int

func (f msgFd) Write(b []byte) (int, error) { return unix.Write(int(f), b) }

func (f msgFd) Read(b []byte) (int, error) {
	n, err := unix.Read(int(f), b)
	if err == nil && n == 0 {
		return 0, io.EOF
	}
	return n, err
}

// recvMsgFd reads one message from fd, waiting for it up to timeout
// (ms); EOF is the peer closing before answering.
func recvMsgFd(fd int, v any, timeout int) error {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(pfd, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("no answer from the network in %d ms", timeout)
		}
		return RecvMsg(msgFd(fd), v)
	}
}
