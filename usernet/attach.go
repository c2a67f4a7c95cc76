package usernet

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/framesock"
)

// Link is a VM's place on a user network.
type Link struct {
	// Fd is the device's frame socket: SOCK_SEQPACKET, non-blocking, one
	// bare Ethernet frame per message.
	Fd int
	// What the network gave the guest (DHCP hands out the same).
	IP, Gateway, DNS netip.Addr
	Net              netip.Prefix
	MTU              int

	helper *exec.Cmd // the helper this VM started, nil if it joined a switch
	alone  bool      // the helper serves this VM alone: it ends with the link
}

// ErrSwitchPath is a switch path that cannot be one.
var ErrSwitchPath = errors.New("bad switch path")

// Attach puts a NIC with the given MAC on the network o describes: a new
// network of its own, or the switch at o.Switch (served by whichever
// member started it, else started here). Errors come before any frame:
// a forward's port already bound, a switch path that is not a socket.
// helper is the executable that serves networks when given HelperArg
// (govm-net).
func Attach(helper string, o Options, mac [6]byte) (*Link, error) {
	req := JoinRequest{MAC: net.HardwareAddr(mac[:]).String(), Forwards: o.Forwards, Opts: o}
	if o.Switch == "" {
		return start(helper, o, req, nil)
	}
	dir := filepath.Dir(o.Switch)
	lock, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: switch=%s: directory %s: %w", ErrSwitchPath, o.Switch, dir, err)
	}
	defer unix.Close(lock)
	// Members come and go under the directory's lock, so the switch
	// never ends while one is on its way in, and two VMs never both
	// start one.
	if err := unix.Flock(lock, unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("switch=%s: lock %s: %w", o.Switch, dir, err)
	}
	defer unix.Flock(lock, unix.LOCK_UN)

	fd, err := dialSwitch(o.Switch)
	if err == nil {
		return joinSwitch(fd, req)
	}
	var st unix.Stat_t
	if unix.Lstat(o.Switch, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%w: switch=%s exists and is not a socket", ErrSwitchPath, o.Switch)
	}
	switch {
	case errors.Is(err, unix.ECONNREFUSED):
		// A switch whose helper died: nothing serves the socket.
		if err := os.Remove(o.Switch); err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("switch=%s: stale socket: %w", o.Switch, err)
		}
	case errors.Is(err, unix.ENOENT):
	default:
		return nil, fmt.Errorf("%w: switch=%s: %w", ErrSwitchPath, o.Switch, err)
	}
	ln, err := listenSwitch(o.Switch)
	if err != nil {
		return nil, err
	}
	// One owner for the descriptor: the File (whose finalizer would
	// otherwise close the number again once another socket has it).
	lnf := os.NewFile(uintptr(ln), "switch")
	l, err := start(helper, o, req, lnf)
	lnf.Close()
	if err != nil {
		os.Remove(o.Switch)
		return nil, err
	}
	return l, nil
}

// dialSwitch connects to the switch socket at path.
func dialSwitch(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	framesock.SetBuffers(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// listenSwitch binds the switch socket, for this user alone.
func listenSwitch(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("%w: switch=%s: %w", ErrSwitchPath, path, err)
	}
	err = unix.Chmod(path, 0o600)
	if err == nil {
		err = unix.Listen(fd, unix.SOMAXCONN)
	}
	if err != nil {
		unix.Close(fd)
		os.Remove(path)
		return -1, fmt.Errorf("switch=%s: %w", path, err)
	}
	return fd, nil
}

// joinSwitch joins a running switch on fd.
func joinSwitch(fd int, req JoinRequest) (*Link, error) {
	l, err := handshake(fd, req)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return l, nil
}

// start runs a helper serving a new network (a switch if ln, a listening
// socket, is set; else a network of this VM alone) and joins it as its
// first member.
func start(helper string, o Options, req JoinRequest, ln *os.File) (*Link, error) {
	alone := ln == nil
	cfg, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	local, remote, err := framesock.Pair()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(helper, HelperArg, string(cfg))
	cmd.ExtraFiles = []*os.File{remote}
	if !alone {
		cmd.ExtraFiles = append(cmd.ExtraFiles, ln)
	}
	// A switch outlives this VM: it holds none of its output open (a
	// caller reading govm's stderr to EOF would wait for the switch).
	// Either way it leaves the terminal's process group, so Ctrl-C on
	// this VM's terminal reaches govm alone.
	if alone {
		cmd.Stderr = os.Stderr
	}
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	err = cmd.Start()
	remote.Close()
	if err != nil {
		unix.Close(local)
		return nil, fmt.Errorf("usernet: start the network: %w", err)
	}
	l, err := handshake(local, req)
	if err != nil {
		unix.Close(local)
		_ = cmd.Wait()
		return nil, err
	}
	l.helper, l.alone = cmd, alone
	return l, nil
}

// handshake sends the join request and reads the answer.
func handshake(fd int, req JoinRequest) (*Link, error) {
	if err := SendMsg(msgFd(fd), req); err != nil {
		return nil, fmt.Errorf("usernet: join: %w", err)
	}
	var rep JoinReply
	if err := recvMsgFd(fd, &rep, int(JoinTimeout.Milliseconds())); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("usernet: the network ended before answering")
		}
		return nil, fmt.Errorf("usernet: join: %w", err)
	}
	if rep.Error != "" {
		return nil, errors.New(rep.Error)
	}
	return &Link{Fd: fd, IP: rep.IP, Gateway: rep.Gateway, DNS: rep.DNS, Net: rep.Net, MTU: rep.MTU}, nil
}

// Close leaves the network. A network of this VM alone ends with it
// (Close waits for its helper); a switch goes on while it has members.
func (l *Link) Close() error {
	err := unix.Close(l.Fd)
	if l.helper != nil {
		if l.alone {
			_ = l.helper.Wait()
		} else {
			_ = l.helper.Process.Release()
		}
	}
	return err
}
