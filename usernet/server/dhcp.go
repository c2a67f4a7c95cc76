package server

import (
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// DHCP (RFC 2131) on the gateway: each MAC gets the address its member
// was given when it joined (or the next free one, for a MAC the guest
// chose itself), with the gateway as router and the DNS address, the
// link's MTU (option 26) so a guest that reads it matches the device's.
const (
	dhcpServerPort = 67 // RFC 2131 4.1
	dhcpClientPort = 68
	dhcpLeaseTime  = time.Hour
)

// serveDHCP answers DHCP on the NIC.
func (n *network) serveDHCP() error {
	var wq waiter.Queue
	ep, terr := n.stack.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return errors.New("usernet: DHCP: " + terr.String())
	}
	ep.SocketOptions().SetBroadcast(true)
	if terr := ep.Bind(tcpip.FullAddress{NIC: nicID, Port: dhcpServerPort}); terr != nil {
		ep.Close()
		return errors.New("usernet: DHCP: " + terr.String())
	}
	srv, err := server4.NewServer("", nil, n.dhcpHandler, server4.WithConn(gonet.NewUDPConn(&wq, ep)))
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve() }()
	return nil
}

func (n *network) dhcpHandler(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
	reply, err := n.dhcpReply(m)
	if err != nil {
		slog.Debug("usernet: DHCP", "err", err)
		return
	}
	if reply == nil {
		return
	}
	// A client without an address hears the answer by broadcast (RFC
	// 2131 4.1).
	to := peer
	if m.ClientIPAddr.IsUnspecified() {
		to = &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpClientPort}
	}
	if _, err := conn.WriteTo(reply.ToBytes(), to); err != nil {
		slog.Debug("usernet: DHCP reply", "err", err)
	}
}

// dhcpReply is the answer to m, or nil for a message that gets none.
func (n *network) dhcpReply(m *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, error) {
	var typ dhcpv4.MessageType
	switch m.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		typ = dhcpv4.MessageTypeAck
	default:
		return nil, nil // RELEASE, DECLINE, INFORM: nothing to say
	}
	if m.OpCode != dhcpv4.OpcodeBootRequest || len(m.ClientHWAddr) != 6 {
		return nil, errors.New("not an Ethernet client's request")
	}
	ip, err := n.lease(m.ClientHWAddr.String())
	if err != nil {
		return nil, err
	}
	o := n.opts
	reply, err := dhcpv4.NewReplyFromRequest(m,
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithYourIP(ip.AsSlice()),
		dhcpv4.WithServerIP(o.Gateway().AsSlice()),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(o.Gateway().AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(dhcpLeaseTime)),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(o.Net.Bits(), 32))),
		dhcpv4.WithOption(dhcpv4.OptRouter(o.Gateway().AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptDNS(o.DNS.AsSlice())),
		dhcpv4.WithOption(dhcpv4.Option{Code: dhcpv4.OptionInterfaceMTU, Value: dhcpv4.Uint16(o.MTU)}),
	)
	if err != nil {
		return nil, err
	}
	return reply, nil
}
