package server

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/govm/govm/usernet"
)

// TestDHCPReply: a DISCOVER gets the member's address, with QEMU's
// layout and the link's MTU.
func TestDHCPReply(t *testing.T) {
	o, _ := usernet.Parse(nil)
	n, err := newNetwork(o)
	if err != nil {
		t.Fatal(err)
	}
	mac := net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	if _, err := n.lease(mac.String()); err != nil {
		t.Fatal(err)
	}
	d, err := dhcpv4.NewDiscovery(mac)
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.dhcpReply(d)
	if err != nil {
		t.Fatal(err)
	}
	if r.MessageType() != dhcpv4.MessageTypeOffer || !r.YourIPAddr.Equal(net.ParseIP("10.0.2.15")) ||
		!r.Router()[0].Equal(net.ParseIP("10.0.2.2")) || !r.DNS()[0].Equal(net.ParseIP("10.0.2.3")) ||
		r.SubnetMask().String() != "ffffff00" || r.TransactionID != d.TransactionID {
		t.Fatalf("offer %s", r.Summary())
	}
	if mtu := r.GetOneOption(dhcpv4.OptionInterfaceMTU); len(mtu) != 2 || binary.BigEndian.Uint16(mtu) != usernet.DefaultMTU {
		t.Fatalf("MTU option %x", mtu)
	}
	// A MAC the network never gave out gets the next free address.
	other, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 9})
	if r, err := n.dhcpReply(other); err != nil || !r.YourIPAddr.Equal(net.ParseIP("10.0.2.16")) {
		t.Fatalf("second MAC: %v, %v", r, err)
	}
}

// FuzzDHCP: whatever a guest sends to the DHCP port, the answer (if any)
// gives an address in the network, and nothing panics.
func FuzzDHCP(f *testing.F) {
	d, _ := dhcpv4.NewDiscovery(net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56})
	f.Add(d.ToBytes())
	r, _ := dhcpv4.NewRequestFromOffer(d)
	if r != nil {
		f.Add(r.ToBytes())
	}
	o, _ := usernet.Parse([]string{"net=10.9.0.0/27"})
	n, err := newNetwork(o)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		reply, err := n.dhcpReply(m)
		if err != nil || reply == nil {
			return
		}
		ip, ok := netip.AddrFromSlice(reply.YourIPAddr.To4())
		if !ok || !o.IsHost(ip) {
			t.Fatalf("offered %v outside %s", reply.YourIPAddr, o.Net)
		}
	})
}
