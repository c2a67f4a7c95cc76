package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/internal/agentkit"
	"github.com/govm/govm/tap"
)

// netSpec is one govm.net= parameter:
// MAC,GUEST-ADDR/LEN,HOST-ADDR[,RX-PORT,TX-PORT,BYTES]. The agent gives
// the interface with that MAC the guest address, pings the host, and with
// ports reads everything the host serves on RX-PORT and sends BYTES of a
// deterministic stream to TX-PORT, saying the SHA-256 of each.
type netSpec struct {
	mac            net.HardwareAddr
	addr           netip.Prefix
	host           netip.Addr
	rxPort, txPort int
	bytes          int64
}

func parseNetSpec(s string) (netSpec, error) {
	var n netSpec
	f := strings.Split(s, ",")
	if len(f) != 3 && len(f) != 6 {
		return n, fmt.Errorf("govm.net=%s: want MAC,ADDR/LEN,HOST[,RXPORT,TXPORT,BYTES]", s)
	}
	var err error
	if n.mac, err = net.ParseMAC(f[0]); err != nil {
		return n, err
	}
	if n.addr, err = netip.ParsePrefix(f[1]); err != nil {
		return n, err
	}
	if n.host, err = netip.ParseAddr(f[2]); err != nil {
		return n, err
	}
	if len(f) == 6 {
		if n.rxPort, err = strconv.Atoi(f[3]); err != nil {
			return n, err
		}
		if n.txPort, err = strconv.Atoi(f[4]); err != nil {
			return n, err
		}
		if n.bytes, err = strconv.ParseInt(f[5], 10, 64); err != nil {
			return n, err
		}
	}
	return n, nil
}

func netSpecs() []string {
	b, _ := os.ReadFile("/proc/cmdline")
	var specs []string
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "govm.net="); ok {
			specs = append(specs, v)
		}
	}
	return specs
}

// hystartParam switches CUBIC's HyStart (the kernel's default congestion
// control leaves slow start early when it sees ACKs bunch or delays grow;
// net/ipv4/tcp_cubic.c).
const hystartParam = "/sys/module/tcp_cubic/parameters/hystart"

// netTest runs every govm.net= test and says the results as GOVM-NET lines.
//
// It turns HyStart off first (the host's end does too): under a nested
// emulator the delay jitter trips it in some transfers and not others,
// whatever the VMM, and a 16 MiB transfer that leaves slow start at a
// cwnd of 60 takes 3-8 times as long as one that does not, which measures
// TCP's luck rather than the VMM's data path.
func netTest() {
	if err := os.WriteFile(hystartParam, []byte("0"), 0); err != nil {
		say("GOVM-NET-ERROR hystart: %v", err)
	}
	for _, s := range netSpecs() {
		spec, err := parseNetSpec(s)
		if err != nil {
			say("GOVM-NET-ERROR %v", err)
			continue
		}
		ifc, err := tap.InterfaceByMAC(spec.mac, 10*time.Second)
		if err != nil {
			say("GOVM-NET-ERROR %s: %v", spec.mac, err)
			continue
		}
		ifname := ifc.Name
		if err := tap.ConfigureInterface(ifname, spec.addr); err != nil {
			say("GOVM-NET-ERROR %s: %v", ifname, err)
			continue
		}
		say("GOVM-NET-UP %s mac=%s addr=%s", ifname, spec.mac, spec.addr)
		rtt, err := ping(spec.host, 20*time.Second)
		say("GOVM-NET-PING %s host=%s ok=%t rtt=%s err=%v", ifname, spec.host, err == nil, rtt.Round(time.Microsecond), err)
		if spec.rxPort == 0 {
			continue
		}
		host := netip.AddrPortFrom(spec.host, uint16(spec.rxPort)).String()
		acct := startGuestAcct()
		n, sum, secs, err := download(host)
		say("GOVM-NET-RX %s bytes=%d crc32c=%s mbps=%.1f err=%v", ifname, n, sum, float64(n)*8/1e6/secs, err)
		acct.say("RX")
		host = netip.AddrPortFrom(spec.host, uint16(spec.txPort)).String()
		acct = startGuestAcct()
		n, sum, secs, err = upload(host, spec.bytes)
		say("GOVM-NET-TX %s bytes=%d crc32c=%s mbps=%.1f err=%v", ifname, n, sum, float64(n)*8/1e6/secs, err)
		acct.say("TX")
	}
	// The guest's side of every transfer (retransmissions, timeouts,
	// drops), for reading a slow run.
	sayNetCounters()
}

// ping sends ICMP echo requests over a raw socket until one is answered.
func ping(host netip.Addr, wait time.Duration) (time.Duration, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(500 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return 0, err
	}
	to := &unix.SockaddrInet4{Addr: host.As4()}
	id := uint16(os.Getpid())
	deadline := time.Now().Add(wait)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		req := make([]byte, 8+32)
		req[0] = 8 // echo request (RFC 792)
		binary.BigEndian.PutUint16(req[4:], id)
		binary.BigEndian.PutUint16(req[6:], seq)
		copy(req[8:], "govm-agent ping payload 0123456")
		binary.BigEndian.PutUint16(req[2:], inetChecksum(req))
		start := time.Now()
		if err := unix.Sendto(fd, req, 0, to); err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		buf := make([]byte, 1500)
		for time.Since(start) < 500*time.Millisecond {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				break
			}
			ihl := int(buf[0]&0xf) * 4
			if n < ihl+8 {
				continue
			}
			icmp := buf[ihl:n]
			if icmp[0] == 0 && binary.BigEndian.Uint16(icmp[4:]) == id && binary.BigEndian.Uint16(icmp[6:]) == seq {
				return time.Since(start), nil
			}
		}
	}
	return 0, fmt.Errorf("no echo reply from %s within %v", host, wait)
}

func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// dial retries while the host's listener is not up yet.
func dial(hostport string) (net.Conn, error) {
	var err error
	for range 50 {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", hostport, 5*time.Second); err == nil {
			return c, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, err
}

// download reads everything the host sends and hashes it.
func download(hostport string) (int64, string, float64, error) {
	c, err := dial(hostport)
	if err != nil {
		return 0, "", 1, err
	}
	defer c.Close()
	h := agentkit.NewNetSum()
	start := time.Now()
	n, err := io.CopyBuffer(h, stallReader{c}, make([]byte, 256<<10))
	return n, agentkit.NetSumHex(h), time.Since(start).Seconds(), err
}

// stallReader fails a read that sees no data for stallTimeout, so a
// stalled transfer ends with the interface's counters said instead of
// hanging until govm's timeout.
type stallReader struct{ c net.Conn }

const stallTimeout = 30 * time.Second

func (r stallReader) Read(p []byte) (int, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(stallTimeout))
	n, err := r.c.Read(p)
	if err != nil && err != io.EOF {
		sayNetCounters()
	}
	return n, err
}

// sayNetCounters says every interface's counters and the TCP statistics.
func sayNetCounters() {
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		var b strings.Builder
		for _, f := range []string{"rx_packets", "rx_bytes", "rx_dropped", "rx_errors", "tx_packets", "tx_dropped", "tx_errors"} {
			v, _ := os.ReadFile("/sys/class/net/" + i.Name + "/statistics/" + f)
			fmt.Fprintf(&b, " %s=%s", f, strings.TrimSpace(string(v)))
		}
		say("GOVM-NET-COUNTERS %s%s", i.Name, b.String())
	}
	// /proc/net/{snmp,netstat} pair a header line with a value line;
	// the non-zero TCP and IP counters are said a few to a line.
	for _, f := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		b, _ := os.ReadFile(f)
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(names) == 0 || len(names) != len(values) || !strings.HasPrefix(names[0], "Tcp") && names[0] != "Ip:" {
				continue
			}
			var pairs []string
			for j := 1; j < len(names); j++ {
				if values[j] != "0" {
					pairs = append(pairs, names[j]+"="+values[j])
				}
			}
			for len(pairs) > 0 {
				k := min(8, len(pairs))
				say("GOVM-NET-STAT %s %s", names[0], strings.Join(pairs[:k], " "))
				pairs = pairs[k:]
			}
		}
	}
}

// upload sends n bytes of a deterministic stream (streamGen) and sums
// what it sent.
func upload(hostport string, n int64) (int64, string, float64, error) {
	c, err := dial(hostport)
	if err != nil {
		return 0, "", 1, err
	}
	h := agentkit.NewNetSum()
	buf := make([]byte, 256<<10)
	gen := agentkit.NewStreamGen(0x9e3779b97f4a7c15)
	start := time.Now()
	var sent int64
	for sent < n {
		gen.Fill(buf)
		chunk := buf[:min(int64(len(buf)), n-sent)]
		_ = c.SetWriteDeadline(time.Now().Add(stallTimeout))
		if _, err := c.Write(chunk); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				sayNetCounters()
			}
			c.Close()
			return sent, agentkit.NetSumHex(h), time.Since(start).Seconds(), err
		}
		h.Write(chunk)
		sent += int64(len(chunk))
	}
	err = c.(*net.TCPConn).CloseWrite()
	// Wait for the host to close, so every byte is acknowledged.
	_, _ = io.Copy(io.Discard, c)
	c.Close()
	return sent, agentkit.NetSumHex(h), time.Since(start).Seconds(), err
}

// guestAcct is a snapshot of the guest's own CPU time and interrupt
// counts, to say what one transfer cost the guest: the same agent runs
// under every VMM, so the lines compare what each VMM makes its guest do
// (interrupts taken, time in softirq) for the same bytes.
type guestAcct struct {
	cpus  map[string][]uint64
	irqs  map[string]uint64
	proto map[string]uint64
}

func startGuestAcct() guestAcct {
	return guestAcct{cpus: agentkit.CPUTimes(), irqs: interruptCounts(), proto: agentkit.ProtoCounters()}
}

// say prints, for the transfer dir since the snapshot:
//
//	GOVM-NET-GUEST-CPU dir user=.. system=.. softirq=.. irq=.. guest=.. idle=.. (ms, all CPUs)
//	GOVM-NET-GUEST-IRQS dir NAME=N ... (interrupts that grew)
//	GOVM-NET-GUEST-TCP dir Tcp.OutSegs=N ... (TCP counters that grew)
func (a guestAcct) say(dir string) {
	var d agentkit.CPUSplit
	for c, v := range agentkit.CPUTimes() {
		if was, ok := a.cpus[c]; ok {
			d.Add(was, v)
		}
	}
	say("GOVM-NET-GUEST-CPU %s %s", dir, d)
	say("GOVM-NET-GUEST-IRQS %s%s", dir, agentkit.CounterGrowth(a.irqs, interruptCounts(), nil, nil))
	say("GOVM-NET-GUEST-TCP %s%s", dir, agentkit.TCPGrowth(a.proto, agentkit.ProtoCounters()))
}

// interruptCounts reads /proc/interrupts: each line's total over the
// CPUs, by the line's device name (the last field: virtio0-input.0) or,
// for the architecture's own lines (LOC, RES, CAL), by their label.
func interruptCounts() map[string]uint64 {
	b, _ := os.ReadFile("/proc/interrupts")
	return parseInterrupts(string(b))
}

func parseInterrupts(text string) map[string]uint64 {
	out := map[string]uint64{}
	lines := strings.Split(text, "\n") // never empty: the header is lines[0]
	ncpu := len(strings.Fields(lines[0]))
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		label := strings.TrimSuffix(f[0], ":")
		var total uint64
		i := 1
		for ; i < len(f) && i <= ncpu; i++ {
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				break
			}
			total += v
		}
		name := label
		if _, err := strconv.Atoi(label); err == nil && len(f) > i {
			name = f[len(f)-1]
		}
		out[name] += total
	}
	return out
}
