package main

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/machine"
)

// parseNet parses --net tap[=NAME][,mac=MAC][,host-ip=ADDR/LEN].
func parseNet(spec string) (machine.NIC, error) {
	var n machine.NIC
	parts := strings.Split(spec, ",")
	switch {
	case parts[0] == "tap":
	case strings.HasPrefix(parts[0], "tap="):
		n.TAP = strings.TrimPrefix(parts[0], "tap=")
		if n.TAP == "" || len(n.TAP) >= unix.IFNAMSIZ || strings.ContainsAny(n.TAP, "/ \t:") {
			return n, fmt.Errorf("--net %q: bad interface name %q (1-%d characters, no '/', ':' or spaces)", spec, n.TAP, unix.IFNAMSIZ-1)
		}
	default:
		return n, fmt.Errorf("--net %q: want tap or tap=NAME first", spec)
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "mac":
			hw, err := net.ParseMAC(v)
			if err != nil || len(hw) != 6 {
				return n, fmt.Errorf("--net %q: bad MAC %q", spec, v)
			}
			if hw[0]&1 != 0 {
				return n, fmt.Errorf("--net %q: MAC %s is a multicast address", spec, v)
			}
			copy(n.MAC[:], hw)
			if n.MAC == ([6]byte{}) {
				return n, fmt.Errorf("--net %q: MAC %s is not an address", spec, v)
			}
		case "host-ip":
			pfx, err := netip.ParsePrefix(v)
			if err != nil || !pfx.Addr().Is4() || pfx.Bits() < 1 || pfx.Bits() > 30 {
				return n, fmt.Errorf("--net %q: host-ip %q: want an IPv4 address with a prefix length 1-30, like 10.0.2.1/24", spec, v)
			}
			n.HostIP = pfx
		default:
			return n, fmt.Errorf("--net %q: unknown option %q (want mac= or host-ip=)", spec, p)
		}
	}
	return n, nil
}

// parseNets parses every --net and refuses one TAP named twice.
func parseNets(specs []string) ([]machine.NIC, error) {
	var nics []machine.NIC
	seen := map[string]bool{}
	macs := map[[6]byte]bool{}
	for _, s := range specs {
		n, err := parseNet(s)
		if err != nil {
			return nil, err
		}
		if n.TAP != "" {
			if seen[n.TAP] {
				return nil, fmt.Errorf("--net %s: the same TAP is already a NIC", n.TAP)
			}
			seen[n.TAP] = true
		}
		if n.MAC != ([6]byte{}) {
			if macs[n.MAC] {
				return nil, fmt.Errorf("--net %q: MAC already used by another NIC", s)
			}
			macs[n.MAC] = true
		}
		nics = append(nics, n)
	}
	return nics, nil
}
