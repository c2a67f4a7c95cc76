package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestVirtioNet boots a guest with two NICs on two TAPs that govm creates
// and addresses on the host side. The guest's stock virtio_net driver must
// bring up both (found by MAC); the guest pings the host on each, then
// moves data over TCP both ways on each, with CRC-32C checked on both
// ends.
// confinedWatch, in a case's Before, waits for the guest's network to come
// up and records govm's capabilities and seccomp state then, as
// GOVM-HOST-CONFINED lines in {dir}/confined.txt.
const confinedWatch = `(for i in $(seq 600); do grep -q GOVM-NET-UP /tmp/console.txt 2>/dev/null && break; sleep 0.5; done
for d in /proc/[0-9]*; do [ "$(cat $d/comm 2>/dev/null)" = govm ] && grep -E '^(CapEff|CapPrm|NoNewPrivs|Seccomp):' $d/status; done |
	sed 's/^/GOVM-HOST-CONFINED /' > {dir}/confined.txt) &
`

func TestVirtioNet(t *testing.T) {
	r := testRunner(t)
	if r.Mode == Direct && os.Geteuid() != 0 {
		t.Skip("creating TAP devices needs root (CAP_NET_ADMIN) in direct mode")
	}
	type nic struct {
		mac, tap, guest, host, rx, tx, bytes string
	}
	// The first NIC moves $GOVM_E2E_NET_BYTES each way (default 64 MiB),
	// the second an eighth of it. Nested, on one L1 CPU, 64 MiB takes 10-20
	// s each way (measured: 28-50 Mbit/s guest to host, 110-150 host to
	// guest).
	size := int64(64 << 20)
	if v := os.Getenv("GOVM_E2E_NET_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("GOVM_E2E_NET_BYTES=%q", v)
		}
		size = n
	}
	nics := []nic{
		{"52:54:00:12:34:01", "govm0", "10.0.2.15/24", "10.0.2.1", "5000", "5001", strconv.FormatInt(size, 10)},
		{"52:54:00:12:34:02", "govm1", "10.0.3.15/24", "10.0.3.1", "5002", "5003", strconv.FormatInt(max(size/8, 1), 10)},
	}
	args := []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M", "--append", "govm.action=nettest", "--timeout", "150s"}
	var before, after strings.Builder
	for i, n := range nics {
		args = append(args, "--net", "tap="+n.tap+",mac="+n.mac+",host-ip="+n.host+"/24",
			"--append", "govm.net="+strings.Join([]string{n.mac, n.guest, n.host, n.rx, n.tx, n.bytes}, ","))
		p := "{dir}/nic" + string(rune('0'+i))
		// The host serves random bytes on the RX port and hashes what
		// arrives on the TX port (govm-host's commands).
		before.WriteString("head -c " + n.bytes + " /dev/urandom > " + p + ".rx\n")
		before.WriteString("govm-host sum " + p + ".rx > " + p + ".rxsum\n")
		before.WriteString("govm-host send " + n.rx + " " + p + ".rx &\n")
		before.WriteString("govm-host recv " + n.tx + " " + p + ".txsum &\n")
		after.WriteString("for i in 1 2 3 4 5 6 7 8 9 10; do [ -s " + p + ".txsum ] && break; sleep 1; done\n")
		after.WriteString("echo GOVM-HOST-RXSUM " + n.mac + " $(cat " + p + ".rxsum)\n")
		after.WriteString("echo GOVM-HOST-TXSUM " + n.mac + " $(cat " + p + ".txsum 2>/dev/null)\n")
	}
	// govm runs as root here (it makes the TAPs): once the guest runs, it
	// has no capabilities left and its seccomp filter is on. (Nested, where
	// the harness keeps govm's console in /tmp/console.txt.)
	if r.Mode != Direct {
		before.WriteString(confinedWatch)
		after.WriteString("cat {dir}/confined.txt\n")
	}
	after.WriteString("ls /sys/class/net/ | tr '\\n' ' ' | sed 's/^/GOVM-HOST-IFACES /'; echo\n")
	after.WriteString("grep -h '^Tcp' /proc/net/snmp /proc/net/netstat | sed 's/^/GOVM-HOST-STAT /'\n")
	res := runCase(t, r, Case{Args: args, Before: before.String(), After: after.String(), Timeout: 4 * time.Minute}, 0)
	out := res.Output
	for _, n := range nics {
		up := regexp.MustCompile(`GOVM-NET-UP (\S+) mac=` + n.mac).FindStringSubmatch(out)
		if up == nil {
			t.Errorf("%s: the guest found no interface with this MAC", n.mac)
			continue
		}
		ifname := up[1]
		if !strings.Contains(out, "GOVM-NET-PING "+ifname+" host="+n.host+" ok=true") {
			t.Errorf("%s (%s): no ping reply from the host %s", n.mac, ifname, n.host)
		}
		hostRx := regexp.MustCompile(`GOVM-HOST-RXSUM ` + n.mac + ` ([0-9a-f]{8})`).FindStringSubmatch(out)
		hostTx := regexp.MustCompile(`GOVM-HOST-TXSUM ` + n.mac + ` ([0-9a-f]{8})`).FindStringSubmatch(out)
		guestRx := regexp.MustCompile(`GOVM-NET-RX ` + ifname + ` bytes=(\d+) crc32c=([0-9a-f]{8}) mbps=([0-9.]+)`).FindStringSubmatch(out)
		guestTx := regexp.MustCompile(`GOVM-NET-TX ` + ifname + ` bytes=(\d+) crc32c=([0-9a-f]{8}) mbps=([0-9.]+)`).FindStringSubmatch(out)
		switch {
		case hostRx == nil || guestRx == nil:
			t.Errorf("%s: host-to-guest transfer incomplete (host sum %v, guest %v)", ifname, hostRx, guestRx)
		case guestRx[1] != n.bytes || guestRx[2] != hostRx[1]:
			t.Errorf("%s: guest received %s bytes with CRC-32C %s; host sent %s bytes with %s", ifname, guestRx[1], guestRx[2], n.bytes, hostRx[1])
		default:
			t.Logf("%s: host to guest %s bytes, CRC-32C matches, %s Mbit/s", ifname, n.bytes, guestRx[3])
		}
		switch {
		case hostTx == nil || guestTx == nil:
			t.Errorf("%s: guest-to-host transfer incomplete (host sum %v, guest %v)", ifname, hostTx, guestTx)
		case guestTx[1] != n.bytes || guestTx[2] != hostTx[1]:
			t.Errorf("%s: guest sent %s bytes with CRC-32C %s; host received CRC-32C %s", ifname, guestTx[1], guestTx[2], hostTx[1])
		default:
			t.Logf("%s: guest to host %s bytes, CRC-32C matches, %s Mbit/s", ifname, n.bytes, guestTx[3])
		}
	}
	for _, want := range []string{"CapEff:\t0000000000000000", "CapPrm:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if r.Mode != Direct && !strings.Contains(out, "GOVM-HOST-CONFINED "+want) {
			t.Errorf("govm while the guest ran: want %q in its status", want)
		}
	}
	// The TAPs govm created are gone once it exits.
	if m := regexp.MustCompile(`GOVM-HOST-IFACES (.*)`).FindStringSubmatch(out); m == nil || strings.Contains(m[1], "govm0") || strings.Contains(m[1], "govm1") {
		t.Errorf("TAPs left behind after govm exited: %v", m)
	}
	if t.Failed() {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "GOVM-NET-COUNTERS") || strings.Contains(l, "GOVM-NET-STAT") || strings.Contains(l, "GOVM-HOST-STAT") || strings.Contains(l, "virtio_net") {
				t.Log(l)
			}
		}
		t.Logf("console tail:\n%s", tail(out, 80))
	}
}
