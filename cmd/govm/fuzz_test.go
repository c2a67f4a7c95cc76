package main

import (
	"strings"
	"testing"

	"github.com/govm/govm/machine"
)

// FuzzSpecs feeds the CLI's specs (--disk, --net, --share, --mem,
// --cpu-affinity) arbitrary text: each parser must return a value or an
// error without panicking, and what it accepts must hold its own rules.
func FuzzSpecs(f *testing.F) {
	for _, s := range []string{
		"disk.img", "disk.img,ro,serial=abc,queues=4", "d,queues=99", "d,serial=" + strings.Repeat("x", 21),
		"tap", "tap=t0,mac=52:54:00:12:34:56,host-ip=10.0.0.1/24", "user", "user,hostfwd=tcp::8080-:80,mtu=1500",
		"user,net=10.1.0.0/24,dns=10.1.0.3,switch=/tmp/s.sock", "socket=/tmp/p.sock,mtu=65520", "user,hostfwd=udp:[::1]:53-:53",
		".", ".:tag,ro", ":x", "512M", "1GiB", "0-3", "2,3", "7-1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseDisk(s); err == nil {
			if d.Path == "" || len(d.Serial) > 20 || d.Queues < 0 {
				t.Errorf("parseDisk(%q) accepted %+v", s, d)
			}
		}
		if n, err := parseNet(s); err == nil {
			kinds := 0
			for _, k := range []bool{n.user != nil, n.socket != "", n.user == nil && n.socket == ""} {
				if k {
					kinds++
				}
			}
			if kinds != 1 {
				t.Errorf("parseNet(%q) accepted %+v: not one kind", s, n)
			}
		}
		_, _ = parseShare(s, 0)
		if size, err := ParseSize(s); err == nil && size == 0 {
			t.Errorf("ParseSize(%q) accepted 0", s)
		}
		if cpus, err := machine.ParseCPUList(s); err == nil {
			for _, c := range cpus {
				if c < 0 {
					t.Errorf("ParseCPUList(%q) = %v", s, cpus)
				}
			}
		}
	})
}
