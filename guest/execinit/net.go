package execinit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/tap"
)

// NetIface is a NIC the init configures before the command runs: the
// address a network govm serves gives this MAC (its DHCP server answers
// the same), so the command has a network without waiting for DHCP.
type NetIface struct {
	MAC     string
	Addr    netip.Prefix
	Gateway netip.Addr
	DNS     netip.Addr
	MTU     int
}

// ifaceWait bounds the wait for a NIC's interface after its driver
// loaded.
const ifaceWait = 2 * time.Second

// upLoopback brings lo up (the kernel gives it 127.0.0.1 then): test
// programs talk to themselves over localhost.
func upLoopback() error {
	return tap.ConfigureInterface("lo", netip.Prefix{})
}

// pingGroups lets every group open ICMP echo sockets (icmp(7)), as
// Fedora and systemd set it: the command runs as the host's user, and
// ping is what a test of a network reaches for first.
const pingGroups = "0 2147483647"

// unprivilegedPortStart lets the command bind any port, as Docker sets it
// in a container's network namespace: the command runs as the host's
// user, and a test server on port 80 is what a hostfwd=...-:80 expects.
const unprivilegedPortStart = "0"

// allowUnprivileged sets net.ipv4.ping_group_range and
// ip_unprivileged_port_start; a kernel without IPv4 has neither.
func allowUnprivileged() {
	_ = os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte(pingGroups), 0)
	_ = os.WriteFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", []byte(unprivilegedPortStart), 0)
}

// configureNet gives each interface its address, MTU and default route.
func configureNet(ifaces []NetIface) error {
	for _, n := range ifaces {
		hw, err := net.ParseMAC(n.MAC)
		if err != nil {
			return fmt.Errorf("NIC %q: %w", n.MAC, err)
		}
		ifc, err := tap.InterfaceByMAC(hw, ifaceWait)
		if err != nil {
			return fmt.Errorf("%w (is virtio_net loaded?)", err)
		}
		name := ifc.Name
		if n.MTU != 0 {
			if err := setMTU(name, n.MTU); err != nil {
				return fmt.Errorf("%s: MTU %d: %w", name, n.MTU, err)
			}
		}
		if err := tap.ConfigureInterface(name, n.Addr); err != nil {
			return err
		}
		if n.Gateway.IsValid() {
			if err := addDefaultRoute(n.Gateway, uint32(ifc.Index)); err != nil {
				return fmt.Errorf("%s: default route via %s: %w", name, n.Gateway, err)
			}
		}
	}
	return nil
}

// writeResolvConf points the resolver at the networks' DNS servers, in
// the root the command sees (an overlay: the host's file is untouched).
func writeResolvConf(ifaces []NetIface) error {
	var b strings.Builder
	for _, n := range ifaces {
		if n.DNS.IsValid() {
			fmt.Fprintf(&b, "nameserver %s\n", n.DNS)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	// It may be a symlink into /run (systemd-resolved): replace it.
	_ = os.Remove("/etc/resolv.conf")
	return os.WriteFile("/etc/resolv.conf", []byte(b.String()), 0o644)
}

// setMTU sets name's MTU (SIOCSIFMTU).
func setMTU(name string, mtu int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	r, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	r.SetUint32(uint32(mtu))
	return unix.IoctlIfreq(fd, unix.SIOCSIFMTU, r)
}

// addDefaultRoute adds 0.0.0.0/0 via gw on interface idx with one
// rtnetlink RTM_NEWROUTE (rtnetlink(7)) and reads its acknowledgement.
func addDefaultRoute(gw netip.Addr, idx uint32) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	msg := routeMessage(gw, idx)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	return netlinkAck(buf[:n])
}

// routeMessage is an RTM_NEWROUTE request for the default route via gw
// on interface idx: nlmsghdr, rtmsg, then RTA_GATEWAY and RTA_OIF.
func routeMessage(gw netip.Addr, idx uint32) []byte {
	const attrs = 2 * (unix.SizeofRtAttr + 4)
	b := make([]byte, unix.SizeofNlMsghdr+unix.SizeofRtMsg+attrs)
	le := binary.LittleEndian // netlink is in host order; govm runs on x86
	le.PutUint32(b[0:], uint32(len(b)))
	le.PutUint16(b[4:], unix.RTM_NEWROUTE)
	le.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	le.PutUint32(b[8:], 1) // sequence
	rt := b[unix.SizeofNlMsghdr:]
	rt[0] = unix.AF_INET
	rt[4] = unix.RT_TABLE_MAIN
	rt[5] = unix.RTPROT_BOOT
	rt[6] = unix.RT_SCOPE_UNIVERSE
	rt[7] = unix.RTN_UNICAST
	a := rt[unix.SizeofRtMsg:]
	le.PutUint16(a[0:], unix.SizeofRtAttr+4)
	le.PutUint16(a[2:], unix.RTA_GATEWAY)
	g := gw.As4()
	copy(a[4:8], g[:])
	le.PutUint16(a[8:], unix.SizeofRtAttr+4)
	le.PutUint16(a[10:], unix.RTA_OIF)
	le.PutUint32(a[12:], idx)
	return b
}

// netlinkAck reads the error code of an NLMSG_ERROR acknowledgement.
func netlinkAck(b []byte) error {
	if len(b) < unix.SizeofNlMsghdr+4 || binary.LittleEndian.Uint16(b[4:]) != unix.NLMSG_ERROR {
		return errors.New("no netlink acknowledgement")
	}
	if code := int32(binary.LittleEndian.Uint32(b[unix.SizeofNlMsghdr:])); code != 0 {
		return unix.Errno(-code)
	}
	return nil
}
