package usernet

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		opts []string
		want string // Options summary, or the error's text
	}{
		{nil, "net=10.0.2.0/24 gw=10.0.2.2 dns=10.0.2.3 guest=10.0.2.15 mtu=65520 fwd=[]"},
		{[]string{"net=192.168.7.9/24"}, "net=192.168.7.0/24 gw=192.168.7.2 dns=192.168.7.3 guest=192.168.7.15 mtu=65520 fwd=[]"},
		{[]string{"net=10.1.0.0/16", "dns=10.1.0.10", "mtu=1500"}, "net=10.1.0.0/16 gw=10.1.0.2 dns=10.1.0.10 guest=10.1.0.15 mtu=1500 fwd=[]"},
		{[]string{"hostfwd=tcp::8080-:80"}, "fwd=[tcp:127.0.0.1:8080-:80]"},
		{[]string{"hostfwd=tcp:127.0.0.1:8080-:80", "hostfwd=udp:0.0.0.0:5353-10.0.2.15:53"}, "fwd=[tcp:127.0.0.1:8080-:80 udp:0.0.0.0:5353-10.0.2.15:53]"},
		{[]string{"switch=/run/user/1000/lab.sock"}, "switch=/run/user/1000/lab.sock"},
		{[]string{"bogus=1"}, `unknown option "bogus"`},
		{[]string{"net"}, "want KEY=VALUE"},
		{[]string{"net=10.0.2.0/28"}, "too small"},
		{[]string{"net=fd00::/64"}, "want an IPv4 network"},
		{[]string{"dns=10.0.3.3"}, "want an address in 10.0.2.0/24"},
		{[]string{"dns=10.0.2.2"}, "other than the gateway"},
		{[]string{"dns=10.0.2.15"}, "below the guests'"},
		{[]string{"mtu=100"}, "want 576 to 65520"},
		{[]string{"hostfwd=tcp::0-:80"}, "out of range"},
		{[]string{"hostfwd=tcp::8080-:65536"}, "out of range"},
		{[]string{"hostfwd=sctp::8080-:80"}, `protocol "sctp"`},
		{[]string{"hostfwd=tcp::8080"}, "no guest side"},
		{[]string{"hostfwd=tcp:example.com:8080-:80"}, "not IPv4"},
		{[]string{"hostfwd=tcp::8080-:80", "hostfwd=tcp:127.0.0.1:8080-:81"}, "already forwarded"},
		{[]string{"hostfwd=tcp::8080-10.0.3.1:80"}, "guest address not a host"},
		{[]string{"hostfwd=tcp::8080-10.0.2.255:80"}, "guest address not a host"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.opts, ","), func(t *testing.T) {
			o, err := Parse(tt.opts)
			if err != nil {
				if !errors.Is(err, ErrSpec) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %q, want one with %q", err, tt.want)
				}
				return
			}
			var fwd []string
			for _, f := range o.Forwards {
				fwd = append(fwd, f.String())
			}
			got := "net=" + o.Net.String() + " gw=" + o.Gateway().String() + " dns=" + o.DNS.String() +
				" guest=" + o.FirstGuest().String() + " mtu=" + itoa(o.MTU) + " fwd=[" + strings.Join(fwd, " ") + "]"
			if o.Switch != "" {
				got += " switch=" + o.Switch
			}
			if !strings.Contains(got, tt.want) {
				t.Fatalf("got %s, want %s in it", got, tt.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// FuzzParse: any --net user spec parses or is refused with ErrSpec, and
// what parses is a network whose gateway, DNS and first guest are hosts
// in it and whose forwards have ports.
func FuzzParse(f *testing.F) {
	f.Add("net=10.0.2.0/24,dns=10.0.2.3,mtu=1500,hostfwd=tcp::8080-:80,switch=/tmp/s.sock")
	f.Add("hostfwd=udp:0.0.0.0:53-10.0.2.15:53")
	f.Add("net=192.168.0.0/27")
	f.Fuzz(func(t *testing.T, spec string) {
		o, err := Parse(strings.Split(spec, ","))
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("%q: error %v is not ErrSpec", spec, err)
			}
			return
		}
		for _, a := range []netip.Addr{o.Gateway(), o.DNS, o.FirstGuest()} {
			if !o.IsHost(a) {
				t.Fatalf("%q: %s is not a host in %s", spec, a, o.Net)
			}
		}
		if o.DNS == o.Gateway() || o.MTU < MinMTU || o.MTU > MaxMTU {
			t.Fatalf("%q: DNS %s, gateway %s, MTU %d", spec, o.DNS, o.Gateway(), o.MTU)
		}
		for _, fw := range o.Forwards {
			if fw.Host.Port() == 0 || fw.GuestPort == 0 || (fw.Proto != "tcp" && fw.Proto != "udp") {
				t.Fatalf("%q: forward %+v", spec, fw)
			}
		}
	})
}
