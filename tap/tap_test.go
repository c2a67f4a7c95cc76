package tap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const vnetHdr = 12

// realTAP opens a real TAP interface, or skips where this host cannot.
func realTAP(t *testing.T, name string) *TAP {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating TAP interfaces needs root (CAP_NET_ADMIN)")
	}
	tp, err := Open(name, vnetHdr)
	if errors.Is(err, ErrNoTun) {
		t.Skipf("no TAP support here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// TestTAPRoundTrip creates a TAP, addresses the host side, and sends an
// ARP request through it as a guest would (virtio-net header first): the
// host kernel's ARP reply comes back. Closing removes the interface.
func TestTAPRoundTrip(t *testing.T) {
	name := fmt.Sprintf("govmt%d", os.Getpid()%10000)
	tp := realTAP(t, name)
	if !tp.Created() || tp.Name() != name {
		t.Fatalf("created %v name %q", tp.Created(), tp.Name())
	}
	if err := tp.Configure(netip.MustParsePrefix("10.99.7.1/24")); err != nil {
		tp.Close()
		t.Fatal(err)
	}
	if err := tp.SetOffload(OffloadCsum | OffloadTSO4 | OffloadTSO6); err != nil {
		tp.Close()
		t.Fatal(err)
	}
	guestMAC := MACFromName(name)
	req := make([]byte, vnetHdr+42)
	eth := req[vnetHdr:]
	copy(eth[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(eth[6:12], guestMAC[:])
	binary.BigEndian.PutUint16(eth[12:], 0x0806) // ARP
	arp := eth[14:]
	binary.BigEndian.PutUint16(arp[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(arp[2:], 0x0800) // IPv4
	arp[4], arp[5] = 6, 4
	binary.BigEndian.PutUint16(arp[6:], 1) // request
	copy(arp[8:14], guestMAC[:])
	copy(arp[14:18], []byte{10, 99, 7, 2})
	copy(arp[24:28], []byte{10, 99, 7, 1})
	if _, err := unix.Write(tp.Fd(), req); err != nil {
		tp.Close()
		t.Fatal(err)
	}
	got := false
	buf := make([]byte, 65536+vnetHdr)
	deadline := time.Now().Add(3 * time.Second)
	for !got && time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(tp.Fd()), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, 200); n == 0 {
			continue
		}
		n, err := unix.Read(tp.Fd(), buf)
		if err != nil || n < vnetHdr+42 {
			continue
		}
		f := buf[vnetHdr:n]
		if binary.BigEndian.Uint16(f[12:]) == 0x0806 && binary.BigEndian.Uint16(f[14+6:]) == 2 &&
			bytes.Equal(f[0:6], guestMAC[:]) && bytes.Equal(f[14+14:14+18], []byte{10, 99, 7, 1}) {
			got = true
		}
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if !got {
		t.Fatal("no ARP reply from the host side of the TAP")
	}
	if _, err := os.Stat("/sys/class/net/" + name); err == nil {
		t.Fatalf("%s still exists after Close", name)
	}
}

func TestOpenErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat(tunDevice); err != nil {
		t.Skipf("no %s", tunDevice)
	}
	if _, err := Open("lo", vnetHdr); err == nil {
		t.Fatal("lo was opened as a TAP")
	}
	if _, err := Open("averyveryverylongname", vnetHdr); err == nil {
		t.Fatal("a 21-byte name was accepted")
	}
	// A TAP held by one file descriptor is busy for a second open.
	name := fmt.Sprintf("govmb%d", os.Getpid()%10000)
	tp := realTAP(t, name)
	defer tp.Close()
	if _, err := Open(name, vnetHdr); !errors.Is(err, ErrBusy) {
		t.Fatalf("second open of %s: %v, want ErrBusy", name, err)
	}
}

func TestMACFromName(t *testing.T) {
	a, b := MACFromName("tap0"), MACFromName("tap1")
	if a == b {
		t.Fatal("two names gave the same MAC")
	}
	if a != MACFromName("tap0") {
		t.Fatal("not stable")
	}
	if a[0]&1 != 0 || a[0]&2 == 0 {
		t.Fatalf("%x is not a locally administered unicast address", a)
	}
}
