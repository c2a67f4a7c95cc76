package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/containers/gvisor-tap-vsock/pkg/services/dns"
	"github.com/containers/gvisor-tap-vsock/pkg/services/forwarder"
	"github.com/containers/gvisor-tap-vsock/pkg/tap"
	"github.com/containers/gvisor-tap-vsock/pkg/types"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/govm/govm/usernet"
)

// nicID is the stack's one NIC, on the switch.
const nicID = 1

// gatewayMAC is the gateway's, in the locally administered range
// (IEEE 802 bit 1 of the first octet), as QEMU's slirp uses 52:55:...
const gatewayMAC = "52:55:0a:00:02:02"

// network is a user-mode network: gvisor-tap-vsock's switch, with a
// gVisor stack on it as the gateway that answers DHCP and DNS and NATs
// TCP and UDP to the host's sockets. It is put together from the
// library's parts rather than its VirtualNetwork, which serves DNS only
// at the gateway's address and leases from its own pool: guests here get
// QEMU's layout (DNS at .3) and fixed addresses per member.
type network struct {
	opts  usernet.Options
	sw    *tap.Switch
	stack *stack.Stack
	fwd   *forwarder.PortsForwarder

	mu     sync.Mutex
	leases map[string]netip.Addr // MAC -> address
}

func newNetwork(o usernet.Options) (*network, error) {
	gw := o.Gateway()
	link, err := tap.NewLinkEndpoint(false, uint32(o.MTU), gatewayMAC, gw.String(), []string{o.DNS.String()})
	if err != nil {
		return nil, fmt.Errorf("usernet: link: %w", err)
	}
	sw := tap.NewSwitch(false)
	link.Connect(sw)
	sw.Connect(link)

	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	if err := s.CreateNIC(nicID, link); err != nil {
		return nil, fmt.Errorf("usernet: NIC: %s", err)
	}
	for _, a := range []netip.Addr{gw, o.DNS} {
		if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
			Protocol:          ipv4.ProtocolNumber,
			AddressWithPrefix: tcpip.AddrFrom4(a.As4()).WithPrefix(),
		}, stack.AddressProperties{}); err != nil {
			return nil, fmt.Errorf("usernet: address %s: %s", a, err)
		}
	}
	// The gateway answers for every address off the LAN: the NAT.
	s.SetSpoofing(nicID, true)
	s.SetPromiscuousMode(nicID, true)
	subnet, err := tcpip.NewSubnet(tcpip.AddrFrom4(o.Net.Addr().As4()), tcpip.MaskFromBytes(net.CIDRMask(o.Net.Bits(), 32)))
	if err != nil {
		return nil, fmt.Errorf("usernet: subnet: %w", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: subnet, NIC: nicID}})
	// Large windows: the link is memory, and a default-sized buffer
	// caps a flow at a fraction of what it carries.
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	sack := tcpip.TCPSACKEnabled(true)
	for _, opt := range []tcpip.SettableTransportProtocolOption{&rcv, &snd, &sack} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); err != nil {
			return nil, fmt.Errorf("usernet: TCP option %T: %s", opt, err)
		}
	}

	// The host is reachable at the gateway's address: its connections
	// go to the host's loopback.
	nat := map[tcpip.Address]tcpip.Address{
		tcpip.AddrFrom4(gw.As4()): tcpip.AddrFrom4([4]byte{127, 0, 0, 1}),
	}
	var natLock sync.Mutex
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, forwarder.TCP(s, nat, &natLock, false).HandlePacket)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, forwarder.UDP(s, nat, &natLock, false).HandlePacket)

	n := &network{opts: o, sw: sw, stack: s, fwd: forwarder.NewPortsForwarder(s), leases: map[string]netip.Addr{}}
	if err := n.serveDNS(); err != nil {
		return nil, err
	}
	if err := n.serveDHCP(); err != nil {
		return nil, err
	}
	return n, nil
}

// serveDNS answers at the DNS address, UDP and TCP, from the host's
// resolver.
func (n *network) serveDNS() error {
	at := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(n.opts.DNS.As4()), Port: 53}
	uc, err := gonet.DialUDP(n.stack, &at, nil, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("usernet: DNS: %w", err)
	}
	ln, err := gonet.ListenTCP(n.stack, at, ipv4.ProtocolNumber)
	if err != nil {
		return fmt.Errorf("usernet: DNS: %w", err)
	}
	srv, err := dns.New(uc, ln, nil)
	if err != nil {
		return fmt.Errorf("usernet: DNS: %w", err)
	}
	go func() { _ = srv.Serve() }()
	go func() { _ = srv.ServeTCP() }()
	return nil
}

// ErrFull is a network with no address left for another member.
var ErrFull = errors.New("no address left in the network")

// lease gives mac an address: the one it has, else the lowest free from
// the first guest's up.
func (n *network) lease(mac string) (netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if a, ok := n.leases[mac]; ok {
		return a, nil
	}
	used := map[netip.Addr]bool{}
	for _, a := range n.leases {
		used[a] = true
	}
	for a := n.opts.FirstGuest(); n.opts.IsHost(a); a = a.Next() {
		if !used[a] {
			n.leases[mac] = a
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("%w (%s)", ErrFull, n.opts.Net)
}

// release forgets mac's lease.
func (n *network) release(mac string) {
	n.mu.Lock()
	delete(n.leases, mac)
	n.mu.Unlock()
}

// expose binds the forwards to guest, all or none.
func (n *network) expose(fwds []usernet.Forward, guest netip.Addr) error {
	for i, f := range fwds {
		to := netip.AddrPortFrom(f.GuestAddr, f.GuestPort)
		if !f.GuestAddr.IsValid() {
			to = netip.AddrPortFrom(guest, f.GuestPort)
		}
		if err := n.fwd.Expose(types.TransportProtocol(f.Proto), f.Host.String(), to.String()); err != nil {
			n.unexpose(fwds[:i])
			return fmt.Errorf("hostfwd=%s: %w", f, err)
		}
	}
	return nil
}

// unexpose closes the forwards' host sockets.
func (n *network) unexpose(fwds []usernet.Forward) {
	for _, f := range fwds {
		_ = n.fwd.Unexpose(types.TransportProtocol(f.Proto), f.Host.String())
	}
}
