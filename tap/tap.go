// Package tap owns the host side of guest networking: TAP interfaces from
// /dev/net/tun, opened with a virtio-net header on every frame
// (IFF_VNET_HDR) so checksum and segmentation offloads pass between the
// guest driver and the host stack untouched. It attaches to an existing
// interface or creates one (gone again when its last file descriptor
// closes), sets the host side's IPv4 address, and tells the kernel which
// offloads the guest accepts. It knows nothing of virtqueues.
package tap

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Offload flags for TUNSETOFFLOAD (linux/if_tun.h): which offloaded frames
// the kernel may hand to the reader.
const (
	OffloadCsum   = 0x01 // TUN_F_CSUM: partial checksums
	OffloadTSO4   = 0x02 // TUN_F_TSO4
	OffloadTSO6   = 0x04 // TUN_F_TSO6
	OffloadTSOECN = 0x08 // TUN_F_TSO_ECN
	OffloadUFO    = 0x10 // TUN_F_UFO
)

// tunDevice is the clone device.
const tunDevice = "/dev/net/tun"

// Errors callers branch on (each wraps the system error).
var (
	ErrNoTun      = errors.New("no /dev/net/tun (load the tun module)")
	ErrPermission = errors.New("not permitted: needs CAP_NET_ADMIN")
	ErrBusy       = errors.New("TAP busy (another process has it open)")
)

// TAP is an open TAP interface.
type TAP struct {
	f       *os.File
	fd      int
	name    string
	created bool
}

// Open attaches to the TAP interface name, or creates it if there is
// none (an empty name lets the kernel pick tapN). hdrLen is the size of
// the virtio-net header on every frame (12 for virtio 1.x). The file
// descriptor is non-blocking.
func Open(name string, hdrLen int) (*TAP, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("TAP name %q longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	existed := false
	if name != "" {
		_, err := os.Stat("/sys/class/net/" + name)
		existed = err == nil
		if existed {
			if _, err := os.Stat("/sys/class/net/" + name + "/tun_flags"); err != nil {
				return nil, fmt.Errorf("%s exists and is not a TAP interface", name)
			}
		}
	}
	fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO):
			return nil, fmt.Errorf("%w: %v", ErrNoTun, err)
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			return nil, fmt.Errorf("%s: not open to this user (even a TAP made for you needs it read-write, as distributions ship it): %w", tunDevice, ErrPermission)
		}
		return nil, fmt.Errorf("%s: %w", tunDevice, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		switch {
		case errors.Is(err, unix.EBUSY):
			return nil, fmt.Errorf("%s: %w", name, ErrBusy)
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			n := name
			if n == "" {
				n = "NAME"
			}
			return nil, fmt.Errorf("%s: creating it %w, or one made for you once by root: ip tuntap add %s mode tap user %s",
				displayName(name), ErrPermission, n, userName())
		case errors.Is(err, unix.EINVAL):
			return nil, fmt.Errorf("%s: TUNSETIFF: %w (is it a TUN rather than a TAP, or without vnet headers?)", name, err)
		}
		return nil, fmt.Errorf("%s: TUNSETIFF: %w", displayName(name), err)
	}
	t := &TAP{fd: fd, name: ifr.Name(), created: !existed}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, hdrLen); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: TUNSETVNETHDRSZ %d: %w", t.name, hdrLen, err)
	}
	t.f = os.NewFile(uintptr(fd), tunDevice)
	return t, nil
}

// userName is the user a TAP would be made for.
func userName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

func displayName(name string) string {
	if name == "" {
		return "new TAP"
	}
	return name
}

// Name is the interface's name.
func (t *TAP) Name() string { return t.name }

// Created reports whether govm created the interface (it goes away when
// the TAP is closed).
func (t *TAP) Created() bool { return t.created }

// Fd is the non-blocking file descriptor frames are read from and
// written to, each with its virtio-net header first.
func (t *TAP) Fd() int { return t.fd }

// SetOffload tells the kernel which offloaded frames it may hand over
// (Offload* flags): those the guest driver negotiated.
func (t *TAP) SetOffload(flags int) error {
	if err := unix.IoctlSetInt(t.fd, unix.TUNSETOFFLOAD, flags); err != nil {
		return fmt.Errorf("%s: TUNSETOFFLOAD %#x: %w", t.name, flags, err)
	}
	return nil
}

// Close closes the TAP; an interface govm created disappears with it.
func (t *TAP) Close() error { return t.f.Close() }

// Configure gives the host side of the interface an IPv4 address and
// brings it up. A zero prefix only brings it up.
func (t *TAP) Configure(addr netip.Prefix) error { return ConfigureInterface(t.name, addr) }

// ConfigureInterface gives any network interface an IPv4 address and
// brings it up (the guest agent uses it for its NICs too).
func ConfigureInterface(name string, addr netip.Prefix) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if addr.IsValid() {
		if !addr.Addr().Is4() {
			return fmt.Errorf("%s: host address %v is not IPv4", name, addr)
		}
		a := addr.Addr().As4()
		if err := ifr.SetInet4Addr(a[:]); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(s, unix.SIOCSIFADDR, ifr); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("%s: setting address %v %w (drop host-ip= and address it as root)", name, addr.Addr(), ErrPermission)
			}
			return fmt.Errorf("%s: setting address %v: %w", name, addr.Addr(), err)
		}
		if err := ifr.SetInet4Addr(net.CIDRMask(addr.Bits(), 32)); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(s, unix.SIOCSIFNETMASK, ifr); err != nil {
			return fmt.Errorf("%s: setting netmask /%d: %w", name, addr.Bits(), err)
		}
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: reading flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s: bringing it up: %w", name, err)
	}
	return nil
}

// MACFromName derives a stable, locally administered unicast MAC address
// from an interface name (FNV-1a), so a guest NIC keeps its address from
// run to run on the same TAP.
func MACFromName(name string) [6]byte {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	mac := [6]byte{0x52, 0x54, byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(h)}
	// 0x52: locally administered (bit 1 set), unicast (bit 0 clear).
	return mac
}

// interfacePoll is how often InterfaceByMAC looks again.
const interfacePoll = 10 * time.Millisecond

// InterfaceByMAC finds the network interface with the MAC, waiting up to
// wait for its driver to register it (the guest side: govm's exec init
// and the guest agent).
func InterfaceByMAC(mac net.HardwareAddr, wait time.Duration) (*net.Interface, error) {
	deadline := time.Now().Add(wait)
	for {
		ifs, err := net.Interfaces()
		if err == nil {
			for i := range ifs {
				if bytes.Equal(ifs[i].HardwareAddr, mac) {
					return &ifs[i], nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no network interface with MAC %s", mac)
		}
		time.Sleep(interfacePoll)
	}
}
