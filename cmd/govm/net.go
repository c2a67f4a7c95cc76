package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/framesock"
	"github.com/govm/govm/machine"
	"github.com/govm/govm/usernet"
)

// netSpec is one --net: a TAP, a user network, or a stream switch.
type netSpec struct {
	spec string
	nic  machine.NIC // TAP, MAC and host-ip for a TAP
	user *usernet.Options
	// socket is a stream-protocol switch's path (passt, gvproxy); mtu
	// the MTU offered to the guest there (0: none, the guest's 1500).
	socket string
	mtu    int
}

// qemuMAC is the first NIC's MAC on a user network or socket, as QEMU
// gives it; further NICs count up from it.
var qemuMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// parseNet parses --net tap[=NAME][,mac=MAC][,host-ip=ADDR/LEN],
// --net user[,OPTION...][,mac=MAC] or --net socket=PATH[,mac=MAC][,mtu=N].
func parseNet(spec string) (netSpec, error) {
	s := netSpec{spec: spec}
	parts := strings.Split(spec, ",")
	var rest []string
	switch {
	case parts[0] == "tap":
	case strings.HasPrefix(parts[0], "tap="):
		s.nic.TAP = strings.TrimPrefix(parts[0], "tap=")
		if s.nic.TAP == "" || len(s.nic.TAP) >= unix.IFNAMSIZ || strings.ContainsAny(s.nic.TAP, "/ \t:") {
			return s, fmt.Errorf("--net %q: bad interface name %q (1-%d characters, no '/', ':' or spaces)", spec, s.nic.TAP, unix.IFNAMSIZ-1)
		}
	case parts[0] == "user":
		s.user = &usernet.Options{}
	case strings.HasPrefix(parts[0], "socket="):
		s.socket = strings.TrimPrefix(parts[0], "socket=")
		if s.socket == "" {
			return s, fmt.Errorf("--net %q: socket= needs a path", spec)
		}
	default:
		return s, fmt.Errorf("--net %q: want tap, tap=NAME, user or socket=PATH first", spec)
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch {
		case k == "mac":
			hw, err := net.ParseMAC(v)
			if err != nil || len(hw) != 6 {
				return s, fmt.Errorf("--net %q: bad MAC %q", spec, v)
			}
			if hw[0]&1 != 0 {
				return s, fmt.Errorf("--net %q: MAC %s is a multicast address", spec, v)
			}
			copy(s.nic.MAC[:], hw)
			if s.nic.MAC == ([6]byte{}) {
				return s, fmt.Errorf("--net %q: MAC %s is not an address", spec, v)
			}
		case k == "host-ip" && s.user == nil && s.socket == "":
			pfx, err := netip.ParsePrefix(v)
			if err != nil || !pfx.Addr().Is4() || pfx.Bits() < 1 || pfx.Bits() > 30 {
				return s, fmt.Errorf("--net %q: host-ip %q: want an IPv4 address with a prefix length 1-30, like 10.0.2.1/24", spec, v)
			}
			s.nic.HostIP = pfx
		case k == "mtu" && s.socket != "":
			n, err := strconv.Atoi(v)
			if err != nil || n < usernet.MinMTU || n > usernet.MaxMTU {
				return s, fmt.Errorf("--net %q: mtu=%s: want %d to %d", spec, v, usernet.MinMTU, usernet.MaxMTU)
			}
			s.mtu = n
		case s.user != nil:
			rest = append(rest, p)
		case s.socket != "":
			return s, fmt.Errorf("--net %q: unknown option %q (want mac= or mtu=)", spec, p)
		default:
			return s, fmt.Errorf("--net %q: unknown option %q (want mac= or host-ip=)", spec, p)
		}
	}
	if s.user != nil {
		o, err := usernet.Parse(rest)
		if err != nil {
			return s, fmt.Errorf("--net %q: %w", spec, err)
		}
		s.user = &o
	}
	return s, nil
}

// parseNets parses every --net, refuses one TAP named twice or one MAC
// used twice, and gives each NIC without a TAP a MAC: QEMU's first
// one counting up, or a random one on a switch, where other VMs are.
func parseNets(specs []string) ([]netSpec, error) {
	var nics []netSpec
	seen := map[string]bool{}
	macs := map[[6]byte]bool{}
	for _, sp := range specs {
		n, err := parseNet(sp)
		if err != nil {
			return nil, err
		}
		if n.nic.TAP != "" {
			if seen[n.nic.TAP] {
				return nil, fmt.Errorf("--net %s: the same TAP is already a NIC", n.nic.TAP)
			}
			seen[n.nic.TAP] = true
		}
		if n.nic.MAC != ([6]byte{}) {
			if macs[n.nic.MAC] {
				return nil, fmt.Errorf("--net %q: MAC already used by another NIC", sp)
			}
			macs[n.nic.MAC] = true
		}
		nics = append(nics, n)
	}
	next := qemuMAC
	for i := range nics {
		n := &nics[i]
		if n.nic.MAC != ([6]byte{}) || (n.user == nil && n.socket == "") {
			continue
		}
		if n.user != nil && n.user.Switch != "" {
			n.nic.MAC = randomMAC()
			continue
		}
		for macs[next] {
			next[5]++
		}
		n.nic.MAC = next
		macs[next] = true
	}
	return nics, nil
}

// randomMAC is a random locally administered unicast MAC in QEMU's
// 52:54:00 range.
func randomMAC() [6]byte {
	mac := qemuMAC
	_, _ = rand.Read(mac[3:])
	return mac
}

// netHelperName is the program that serves user networks, installed
// beside govm.
const netHelperName = "govm-net"

// netHelper finds govm-net: beside govm's own executable, else on PATH.
func netHelper() (string, error) {
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			p := filepath.Join(filepath.Dir(exe), netHelperName)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	if p, err := exec.LookPath(netHelperName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("a user network needs %s beside govm or on PATH (make build builds both; or go install github.com/govm/govm/cmd/...)", netHelperName)
}

// attachNets connects each user network and socket (closed through
// open) and returns the machine's NICs. Errors come before the VM
// exists; whatever was attached is left again by the caller's closers.
func attachNets(specs []netSpec, open *[]io.Closer) ([]machine.NIC, error) {
	var nics []machine.NIC
	for _, s := range specs {
		n := s.nic
		switch {
		case s.user != nil:
			helper, err := netHelper()
			if err != nil {
				return nil, fmt.Errorf("--net %s: %w", s.spec, err)
			}
			l, err := usernet.Attach(helper, *s.user, n.MAC)
			if err != nil {
				return nil, fmt.Errorf("--net %s: %w", s.spec, err)
			}
			*open = append(*open, l)
			n.Frames = &machine.FrameLink{Fd: l.Fd, MTU: uint16(l.MTU), Name: "user " + l.IP.String()}
			n.Guest = &machine.GuestNet{IP: netip.PrefixFrom(l.IP, l.Net.Bits()), Gateway: l.Gateway, DNS: l.DNS, MTU: l.MTU}
		case s.socket != "":
			r, err := framesock.DialStream(s.socket)
			if err != nil {
				return nil, fmt.Errorf("--net %s: %w", s.spec, err)
			}
			*open = append(*open, r)
			n.Frames = &machine.FrameLink{Fd: r.Local, MTU: uint16(s.mtu), Name: "socket " + s.socket}
		}
		nics = append(nics, n)
	}
	return nics, nil
}
