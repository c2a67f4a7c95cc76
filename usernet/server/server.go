// Package server serves a user-mode network for govm's VMs, in a process
// of its own (govm-net): gvisor-tap-vsock's switch and a gVisor stack as
// the gateway, with DHCP, DNS, NAT to the host's sockets and port
// forwards. It is kept out of govm's own binary: the library's packages
// cost every process that links them about 11 MiB at start (gopacket's
// tables, built at init), which a VM without a user network should not
// carry, and the govm exec image carries govm itself.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/govm/govm/framesock"
	"github.com/govm/govm/usernet"
)

// congestedWait is how long a switch of several VMs waits for a member
// whose guest posts no receive buffers before dropping frames to it, so
// one stuck VM does not stall the others. A network of one VM waits
// instead: back-pressure into the NAT loses nothing.
const congestedWait = 50 * time.Millisecond

// Main serves the network described by args[0] (usernet.Options as
// JSON) until its last member leaves, and returns the exit code. The
// network runs in a process of its own so that a switch outlives the VM
// that started it.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "govm: usernet helper: want one argument")
		return 2
	}
	var o usernet.Options
	if err := json.Unmarshal([]byte(args[0]), &o); err != nil {
		fmt.Fprintf(os.Stderr, "govm: usernet helper: %v\n", err)
		return 2
	}
	// The library logs each member's leaving as an error, and its port
	// forwarder each connection the guest refused, to the standard
	// logger: in govm exec that is the command's stderr. The member's
	// govm reports what matters.
	logrus.SetOutput(io.Discard)
	log.SetOutput(io.Discard)
	if os.Getenv("GOVM_USERNET_DEBUG") != "" {
		logrus.SetOutput(os.Stderr)
		logrus.SetLevel(logrus.DebugLevel)
		log.SetOutput(os.Stderr)
	}
	if err := serve(o); err != nil {
		if !errors.Is(err, errAnswered) {
			fmt.Fprintf(os.Stderr, "govm: usernet: %v\n", err)
		}
		return 1
	}
	return 0
}

// errAnswered is a failure the first member was told of (and reports).
var errAnswered = errors.New("refused the first member")

// server is a running network and its members.
type server struct {
	net  *network
	ln   *net.UnixListener // nil for a network of one VM
	lock int               // the switch directory, flocked while members come and go

	mu      sync.Mutex
	members map[string]bool // MACs
	sock    unix.Stat_t     // the switch socket as bound, to remove only it
	done    chan struct{}
}

func serve(o usernet.Options) error {
	mf := os.NewFile(usernet.HelperMemberFd, "member")
	first, err := net.FileConn(mf) // a duplicate
	mf.Close()
	if err != nil {
		return err
	}
	n, err := newNetwork(o)
	if err != nil {
		if usernet.SendMsg(first, usernet.JoinReply{Error: err.Error()}) == nil {
			return errAnswered
		}
		return err
	}
	s := &server{net: n, members: map[string]bool{}, done: make(chan struct{}), lock: -1}
	if o.Switch != "" {
		f := os.NewFile(usernet.HelperListenerFd, "switch")
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return err
		}
		s.ln = l.(*net.UnixListener)
		if err := unix.Stat(o.Switch, &s.sock); err != nil {
			return err
		}
		if s.lock, err = unix.Open(filepath.Dir(o.Switch), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
	}
	// The first member's failure ends the network: its creator, holding
	// the switch's lock, removes the socket.
	if err := s.join(first); err != nil {
		return errAnswered
	}
	if s.ln != nil {
		go s.accept()
	}
	<-s.done
	return nil
}

// accept takes members joining the switch.
func (s *server) accept() {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return // closed by the last member's leaving
		}
		if rc, err := c.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { framesock.SetBuffers(int(fd)) })
		}
		go func() {
			if err := s.join(c); err != nil {
				slog.Debug("usernet: join", "err", err)
			}
		}()
	}
}

// join answers a member's join request and, if it may join, serves its
// frames on the switch until it leaves.
func (s *server) join(c net.Conn) error {
	var req usernet.JoinRequest
	_ = c.SetReadDeadline(time.Now().Add(usernet.JoinTimeout))
	if err := usernet.RecvMsg(c, &req); err != nil {
		c.Close()
		return err
	}
	_ = c.SetReadDeadline(time.Time{})
	mac, ip, err := s.admit(req)
	if err != nil {
		_ = usernet.SendMsg(c, usernet.JoinReply{Error: err.Error()})
		c.Close()
		return err
	}
	o := s.net.opts
	if err := usernet.SendMsg(c, usernet.JoinReply{IP: ip, Net: o.Net, Gateway: o.Gateway(), DNS: o.DNS, MTU: o.MTU}); err != nil {
		s.leave(mac, req.Forwards)
		c.Close()
		return err
	}
	go func() {
		m := &memberConn{Conn: c, shared: s.ln != nil}
		_ = s.net.sw.Accept(context.Background(), m, types.BessProtocol)
		s.leave(mac, req.Forwards)
	}()
	return nil
}

// admit checks a join request against the network and gives the member
// its address and forwards. It returns the member's MAC as the network
// keys it.
func (s *server) admit(req usernet.JoinRequest) (string, netip.Addr, error) {
	o, r := s.net.opts, req.Opts
	switch {
	case r.Set.Net && r.Net != o.Net:
		return "", netip.Addr{}, fmt.Errorf("the switch's network is %s, not %s", o.Net, r.Net)
	case r.Set.DNS && r.DNS != o.DNS:
		return "", netip.Addr{}, fmt.Errorf("the switch's DNS is %s, not %s", o.DNS, r.DNS)
	case r.Set.MTU && r.MTU != o.MTU:
		return "", netip.Addr{}, fmt.Errorf("the switch's MTU is %d, not %d", o.MTU, r.MTU)
	}
	hw, err := net.ParseMAC(req.MAC)
	if err != nil || len(hw) != 6 {
		return "", netip.Addr{}, fmt.Errorf("bad MAC %q", req.MAC)
	}
	mac := hw.String()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members[mac] {
		return "", netip.Addr{}, fmt.Errorf("MAC %s is already on the switch", mac)
	}
	ip, err := s.net.lease(mac)
	if err != nil {
		return "", netip.Addr{}, err
	}
	if err := s.net.expose(req.Forwards, ip); err != nil {
		s.net.release(mac)
		return "", netip.Addr{}, err
	}
	s.members[mac] = true
	return mac, ip, nil
}

// leave drops a member and its forwards; the last one's leaving ends the
// network.
func (s *server) leave(mac string, fwds []usernet.Forward) {
	s.net.unexpose(fwds)
	s.mu.Lock()
	delete(s.members, mac)
	s.net.release(mac)
	empty := len(s.members) == 0
	s.mu.Unlock()
	if empty {
		s.maybeEnd()
	}
}

// maybeEnd ends the network if it has no member. A switch first takes
// its directory's lock, under which members connect, so none can be on
// its way in while the socket goes.
func (s *server) maybeEnd() {
	if s.ln != nil {
		if err := unix.Flock(s.lock, unix.LOCK_EX); err != nil {
			slog.Warn("usernet: lock", "err", err)
		}
		defer unix.Flock(s.lock, unix.LOCK_UN)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.members) != 0 {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	if s.ln != nil {
		s.ln.SetUnlinkOnClose(false)
		s.ln.Close()
		var st unix.Stat_t
		if unix.Stat(s.net.opts.Switch, &st) == nil && st.Dev == s.sock.Dev && st.Ino == s.sock.Ino {
			_ = os.Remove(s.net.opts.Switch)
		}
	}
	close(s.done)
}

// memberConn is a member's frame socket as the switch uses it. Reads
// skip frames shorter than an Ethernet header (the switch would index
// past them). On a switch shared by several VMs, a frame for a member
// whose guest has stopped taking them is dropped after congestedWait,
// and further ones at once until it takes one again.
type memberConn struct {
	net.Conn
	shared    bool
	congested bool
}

func (c *memberConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if err != nil || n >= framesock.MinFrame {
			return n, err
		}
	}
}

func (c *memberConn) Write(b []byte) (int, error) {
	if !c.shared {
		return c.Conn.Write(b)
	}
	wait := congestedWait
	if c.congested {
		wait = time.Millisecond
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(wait))
	n, err := c.Conn.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.congested = true
		return len(b), nil
	}
	c.congested = false
	return n, err
}
