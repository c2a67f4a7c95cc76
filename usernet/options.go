package usernet

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// QEMU's user network, whose layout guests and users already know
// (QEMU's docs, "Network options", -netdev user): the gateway (also the
// host) at .2, DNS at .3, the first guest at .15.
const (
	DefaultNet    = "10.0.2.0/24"
	gatewayHost   = 2
	dnsHost       = 3
	firstHost     = 15
	DefaultMTU    = MaxMTU // passt's default
	minPrefixBits = 1
	// maxPrefixBits leaves room for the first guest at .15 and a few
	// more: a /27 holds .15 to .30.
	maxPrefixBits = 27
	// MinMTU and MaxMTU bound the MTU offered on a frame socket: every
	// IPv4 host takes 576-byte datagrams (RFC 791), and 65520 leaves a
	// 64 KiB frame room for its headers.
	MinMTU = 576
	MaxMTU = 65520
)

// Forward is a host address whose connections (or datagrams) go to a
// guest port: hostfwd=PROTO:HOSTADDR:HOSTPORT-[GUESTADDR]:GUESTPORT.
type Forward struct {
	Proto string         // "tcp" or "udp"
	Host  netip.AddrPort // bound on the host; 127.0.0.1 unless given
	// GuestAddr is the guest's address; the zero Addr means the address
	// the guest is given.
	GuestAddr netip.Addr
	GuestPort uint16
}

// String is the forward in the spec's syntax.
func (f Forward) String() string {
	g := ""
	if f.GuestAddr.IsValid() {
		g = f.GuestAddr.String()
	}
	return fmt.Sprintf("%s:%s-%s:%d", f.Proto, f.Host, g, f.GuestPort)
}

// Options are a --net user spec's: the network's layout (which the first
// member of a switch sets), the port forwards to this guest, and the
// switch to join, if any.
type Options struct {
	Net      netip.Prefix // masked; DefaultNet unless given
	DNS      netip.Addr   // the guest's DNS server; .3 unless given
	MTU      int
	Forwards []Forward
	Switch   string // socket path; "" for a network of this VM alone
	// Set says which of Net, DNS and MTU the user gave: a switch's
	// member must agree with the switch on those.
	Set struct{ Net, DNS, MTU bool }
}

// Gateway is the network's gateway, which is also the host.
func (o Options) Gateway() netip.Addr { return nthHost(o.Net, gatewayHost) }

// FirstGuest is the first address the network gives a guest.
func (o Options) FirstGuest() netip.Addr { return nthHost(o.Net, firstHost) }

// nthHost is the address n after the network's.
func nthHost(p netip.Prefix, n int) netip.Addr {
	a := p.Masked().Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(n)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// ErrSpec is a malformed --net user spec.
var ErrSpec = errors.New("bad --net user spec")

// Parse reads the options after "user" in --net user,OPT,OPT...
func Parse(opts []string) (Options, error) {
	o := Options{Net: netip.MustParsePrefix(DefaultNet), MTU: DefaultMTU}
	var dns string
	for _, p := range opts {
		k, v, ok := strings.Cut(p, "=")
		if !ok || v == "" {
			return o, fmt.Errorf("%w: %q: want KEY=VALUE", ErrSpec, p)
		}
		switch k {
		case "net":
			pfx, err := netip.ParsePrefix(v)
			if err != nil || !pfx.Addr().Is4() {
				return o, fmt.Errorf("%w: net=%s: want an IPv4 network like 10.0.2.0/24", ErrSpec, v)
			}
			if b := pfx.Bits(); b < minPrefixBits || b > maxPrefixBits {
				return o, fmt.Errorf("%w: net=%s: a /%d is too small (at most /%d, which holds guests from .%d)", ErrSpec, v, b, maxPrefixBits, firstHost)
			}
			o.Net, o.Set.Net = pfx.Masked(), true
		case "dns":
			dns, o.Set.DNS = v, true
		case "mtu":
			n, err := strconv.Atoi(v)
			if err != nil || n < MinMTU || n > MaxMTU {
				return o, fmt.Errorf("%w: mtu=%s: want %d to %d", ErrSpec, v, MinMTU, MaxMTU)
			}
			o.MTU, o.Set.MTU = n, true
		case "hostfwd":
			f, err := parseForward(v)
			if err != nil {
				return o, err
			}
			for _, g := range o.Forwards {
				if g.Proto == f.Proto && g.Host == f.Host {
					return o, fmt.Errorf("%w: hostfwd=%s: %s %s is already forwarded", ErrSpec, v, f.Proto, f.Host)
				}
			}
			o.Forwards = append(o.Forwards, f)
		case "switch":
			if !filepath.IsAbs(v) {
				abs, err := filepath.Abs(v)
				if err != nil {
					return o, fmt.Errorf("%w: switch=%s: %v", ErrSpec, v, err)
				}
				v = abs
			}
			o.Switch = filepath.Clean(v)
		default:
			return o, fmt.Errorf("%w: unknown option %q (want net=, dns=, mtu=, hostfwd= or switch=)", ErrSpec, k)
		}
	}
	o.DNS = nthHost(o.Net, dnsHost)
	if dns != "" {
		a, err := netip.ParseAddr(dns)
		if err != nil || !a.Is4() || !o.Net.Contains(a) {
			return o, fmt.Errorf("%w: dns=%s: want an address in %s", ErrSpec, dns, o.Net)
		}
		if !o.IsHost(a) || a == o.Gateway() || a.Compare(o.FirstGuest()) >= 0 {
			return o, fmt.Errorf("%w: dns=%s: want a host address below the guests' (.%d), other than the gateway %s", ErrSpec, dns, firstHost, o.Gateway())
		}
		o.DNS = a
	}
	for _, f := range o.Forwards {
		if g := f.GuestAddr; g.IsValid() && !o.IsHost(g) {
			return o, fmt.Errorf("%w: hostfwd=%s: guest address not a host in %s", ErrSpec, f, o.Net)
		}
	}
	return o, nil
}

// IsHost reports whether a is a host address of the network: in it, and
// neither its own address nor its broadcast address.
func (o Options) IsHost(a netip.Addr) bool {
	last := nthHost(o.Net, 1<<(32-o.Net.Bits())-1)
	return o.Net.Contains(a) && a != o.Net.Addr() && a != last
}

// parseForward reads PROTO:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, as
// QEMU's hostfwd= does; HOSTADDR defaults to 127.0.0.1, never all
// addresses unless asked (0.0.0.0).
func parseForward(v string) (Forward, error) {
	bad := func(why string) (Forward, error) {
		return Forward{}, fmt.Errorf("%w: hostfwd=%s: %s (want tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT)", ErrSpec, v, why)
	}
	proto, rest, ok := strings.Cut(v, ":")
	if !ok {
		return bad("no protocol")
	}
	if proto != "tcp" && proto != "udp" {
		return bad("protocol " + strconv.Quote(proto))
	}
	host, guest, ok := strings.Cut(rest, "-")
	if !ok {
		return bad("no guest side")
	}
	hostAddr, hostPort, err := addrPort(host, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
	if err != nil {
		return bad("host side: " + err.Error())
	}
	guestAddr, guestPort, err := addrPort(guest, netip.Addr{})
	if err != nil {
		return bad("guest side: " + err.Error())
	}
	return Forward{Proto: proto, Host: netip.AddrPortFrom(hostAddr, hostPort), GuestAddr: guestAddr, GuestPort: guestPort}, nil
}

// addrPort reads [ADDR]:PORT with a port from 1 to 65535; a missing ADDR
// is def.
func addrPort(s string, def netip.Addr) (netip.Addr, uint16, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, errors.New("want [ADDR]:PORT")
	}
	addr := def
	if a != "" {
		var err error
		if addr, err = netip.ParseAddr(a); err != nil || !addr.Is4() {
			return netip.Addr{}, 0, fmt.Errorf("address %q is not IPv4", a)
		}
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return netip.Addr{}, 0, fmt.Errorf("port %q out of range 1-65535", p)
	}
	return addr, uint16(n), nil
}
