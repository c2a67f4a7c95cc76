package agentkit

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The kernel's protocol counters (/proc/net/snmp and /proc/net/netstat:
// each group is a line of names and a line of values, both led by
// "Group:"), for what TCP did during a transfer: segments, retransmits,
// timeouts, loss recovery, drops. Both ends of the network benchmark say
// them, so a slow transfer shows whether TCP backed off.

// protoCounterFiles are read by ProtoCounters.
var protoCounterFiles = []string{"/proc/net/snmp", "/proc/net/netstat"}

// ProtoCounters reads the counters as "Group.Name" (Tcp.RetransSegs,
// TcpExt.TCPTimeouts).
func ProtoCounters() map[string]uint64 {
	out := map[string]uint64{}
	for _, f := range protoCounterFiles {
		b, err := os.ReadFile(f)
		if err == nil {
			ParseProtoCounters(string(b), out)
		}
	}
	return out
}

// ParseProtoCounters adds the counters of one file to out. Negative values
// (Tcp.MaxConn is -1) and lines that do not pair up are skipped.
func ParseProtoCounters(text string, out map[string]uint64) {
	lines := strings.Split(text, "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) < 2 || len(names) != len(values) || names[0] != values[0] || !strings.HasSuffix(names[0], ":") {
			continue
		}
		group := strings.TrimSuffix(names[0], ":")
		for j := 1; j < len(names); j++ {
			if v, err := strconv.ParseUint(values[j], 10, 64); err == nil {
				out[group+"."+names[j]] = v
			}
		}
	}
}

// TCPGrowth is " Name=delta" for each TCP counter (Tcp and TcpExt groups)
// that grew from before to after, sorted by name.
func TCPGrowth(before, after map[string]uint64) string {
	return CounterGrowth(before, after, func(n string) bool {
		return strings.HasPrefix(n, "Tcp.") || strings.HasPrefix(n, "TcpExt.")
	}, nil)
}

// CounterGrowth is " name=delta" for each counter in after that keep
// accepts and that grew from before, sorted by name; a nil keep takes
// every counter, and level (may be nil) names those said at their level after
// instead (gauges), grown or not.
func CounterGrowth(before, after map[string]uint64, keep func(string) bool, level map[string]bool) string {
	var names []string
	for n, v := range after {
		if (keep == nil || keep(n)) && (v > before[n] || level[n]) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		v := after[n]
		if !level[n] {
			v -= before[n]
		}
		fmt.Fprintf(&b, " %s=%d", n, v)
	}
	return b.String()
}
