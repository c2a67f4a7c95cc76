package usernet_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/usernet"
	"github.com/govm/govm/usernet/server"
)

// TestMain lets the test binary serve networks, as govm-net does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == usernet.HelperArg {
		os.Exit(server.Main(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// arpRequest is an Ethernet ARP request from mac/ip for target
// (RFC 826).
func arpRequest(mac [6]byte, ip, target netip.Addr) []byte {
	f := make([]byte, 42)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], 0x0806)
	binary.BigEndian.PutUint16(f[14:], 1)      // Ethernet
	binary.BigEndian.PutUint16(f[16:], 0x0800) // IPv4
	f[18], f[19] = 6, 4
	binary.BigEndian.PutUint16(f[20:], 1) // request
	copy(f[22:28], mac[:])
	a, b := ip.As4(), target.As4()
	copy(f[28:32], a[:])
	copy(f[38:42], b[:])
	return f
}

// gatewayAnswers sends an ARP request for the gateway on l and waits for
// the reply.
func gatewayAnswers(t *testing.T, l *usernet.Link, mac [6]byte) {
	t.Helper()
	if _, err := unix.Write(l.Fd, arpRequest(mac, l.IP, l.Gateway)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(l.Fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, 100); n == 0 {
			continue
		}
		n, err := unix.Read(l.Fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		f := buf[:n]
		gw := l.Gateway.As4()
		if n >= 42 && binary.BigEndian.Uint16(f[12:]) == 0x0806 && binary.BigEndian.Uint16(f[20:]) == 2 &&
			bytes.Equal(f[28:32], gw[:]) && bytes.Equal(f[0:6], mac[:]) {
			return
		}
	}
	t.Fatalf("%s: no ARP reply from the gateway %s", l.IP, l.Gateway)
}

func self(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestAttachAlone(t *testing.T) {
	o, _ := usernet.Parse(nil)
	mac := [6]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	l, err := usernet.Attach(self(t), o, mac)
	if err != nil {
		t.Fatal(err)
	}
	if l.IP.String() != "10.0.2.15" || l.Gateway.String() != "10.0.2.2" || l.DNS.String() != "10.0.2.3" || l.MTU != usernet.DefaultMTU {
		t.Fatalf("link %+v", l)
	}
	gatewayAnswers(t, l, mac)
	// A runt does not upset the network.
	if _, err := unix.Write(l.Fd, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	gatewayAnswers(t, l, mac)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestSwitchHandOver: the first member starts the switch; a second
// joins; the first leaves and the switch goes on serving the second and
// a third; the socket goes with the last.
func TestSwitchHandOver(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lab.sock")
	o, err := usernet.Parse([]string{"switch=" + path})
	if err != nil {
		t.Fatal(err)
	}
	macs := [][6]byte{{0x52, 0x54, 0, 0, 0, 1}, {0x52, 0x54, 0, 0, 0, 2}, {0x52, 0x54, 0, 0, 0, 3}}
	a, err := usernet.Attach(self(t), o, macs[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := usernet.Attach(self(t), o, macs[1])
	if err != nil {
		t.Fatal(err)
	}
	if a.IP.String() != "10.0.2.15" || b.IP.String() != "10.0.2.16" {
		t.Fatalf("a %s, b %s: not one network", a.IP, b.IP)
	}
	if _, err := usernet.Attach(self(t), o, macs[1]); err == nil || !strings.Contains(err.Error(), "already on the switch") {
		t.Fatalf("the same MAC twice: %v", err)
	}
	if _, err := usernet.Attach(self(t), usernet.Options{Net: netip.MustParsePrefix("10.9.0.0/24"), Switch: path, Set: struct{ Net, DNS, MTU bool }{Net: true}}, macs[2]); err == nil {
		t.Fatal("a member with another network joined")
	}
	a.Close()
	gatewayAnswers(t, b, macs[1])
	c, err := usernet.Attach(self(t), o, macs[2])
	if err != nil {
		t.Fatal(err)
	}
	// a's address is free again once the switch has seen it leave,
	// which may be after c joined.
	if c.IP == b.IP || (c.IP.String() != "10.0.2.15" && c.IP.String() != "10.0.2.17") {
		t.Fatalf("c got %s (b has %s)", c.IP, b.IP)
	}
	gatewayAnswers(t, c, macs[2])
	b.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket gone with a member left: %v", err)
	}
	c.Close()
	waitGone(t, path)
}

func waitGone(t *testing.T, path string) {
	t.Helper()
	for range 100 {
		if _, err := os.Lstat(path); os.IsNotExist(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s left behind", path)
}

// TestAttachErrors: bad switch paths and a forward to a port already
// bound fail before any frame, and leave neither socket nor port behind.
func TestAttachErrors(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := busy.Addr().(*net.TCPAddr).Port
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, nil, 0o600)
	mac := [6]byte{0x52, 0x54, 0, 0, 0, 7}
	tests := []struct {
		name, want string
		opts       []string
	}{
		{"missing directory", "does not exist", []string{"switch=" + filepath.Join(dir, "none", "s.sock")}},
		{"not a socket", "not a socket", []string{"switch=" + regular}},
		{"port bound", "address already in use", []string{"hostfwd=tcp::" + strconv.Itoa(port) + "-:80"}},
		{"port bound, switch", "address already in use", []string{"switch=" + filepath.Join(dir, "s.sock"), "hostfwd=tcp::" + strconv.Itoa(port) + "-:80"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := usernet.Parse(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			l, err := usernet.Attach(self(t), o, mac)
			if err == nil {
				l.Close()
				t.Fatal("attached")
			}
			if !strings.Contains(err.Error(), tt.want) && !(tt.want == "does not exist" && errors.Is(err, unix.ENOENT)) {
				t.Fatalf("error %q, want %q", err, tt.want)
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(dir, "s.sock")); !os.IsNotExist(err) {
		t.Fatalf("switch socket left behind: %v", err)
	}
	// A stale socket (its switch died) is taken over.
	stale := filepath.Join(dir, "stale.sock")
	fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: stale}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	o, _ := usernet.Parse([]string{"switch=" + stale})
	l, err := usernet.Attach(self(t), o, mac)
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	l.Close()
	waitGone(t, stale)
}
