package execinit

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

func TestRouteMessage(t *testing.T) {
	b := routeMessage(netip.MustParseAddr("10.0.2.2"), 7)
	le := binary.LittleEndian
	if int(le.Uint32(b)) != len(b) || le.Uint16(b[4:]) != unix.RTM_NEWROUTE {
		t.Fatalf("header %x", b[:16])
	}
	rt := b[unix.SizeofNlMsghdr:]
	if rt[0] != unix.AF_INET || rt[1] != 0 || rt[4] != unix.RT_TABLE_MAIN || rt[7] != unix.RTN_UNICAST {
		t.Fatalf("rtmsg %x: want AF_INET, dst_len 0 (default), main table, unicast", rt[:unix.SizeofRtMsg])
	}
	a := rt[unix.SizeofRtMsg:]
	if le.Uint16(a[2:]) != unix.RTA_GATEWAY || [4]byte(a[4:8]) != [4]byte{10, 0, 2, 2} ||
		le.Uint16(a[10:]) != unix.RTA_OIF || le.Uint32(a[12:]) != 7 {
		t.Fatalf("attributes %x", a)
	}
}

func TestNetlinkAck(t *testing.T) {
	ack := func(code int32) []byte {
		b := make([]byte, unix.SizeofNlMsghdr+4+unix.SizeofNlMsghdr)
		binary.LittleEndian.PutUint16(b[4:], unix.NLMSG_ERROR)
		binary.LittleEndian.PutUint32(b[unix.SizeofNlMsghdr:], uint32(code))
		return b
	}
	if err := netlinkAck(ack(0)); err != nil {
		t.Fatalf("ack 0: %v", err)
	}
	if err := netlinkAck(ack(-int32(unix.EEXIST))); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("ack -EEXIST: %v", err)
	}
	if err := netlinkAck([]byte{1, 2}); err == nil {
		t.Fatal("short reply taken as an acknowledgement")
	}
}
