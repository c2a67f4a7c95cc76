package main

import (
	"strings"
	"testing"

	"github.com/govm/govm/internal/agentkit"
)

func TestKVMGrowth(t *testing.T) {
	tests := []struct {
		name          string
		before, after map[string]uint64
		want          string
	}{
		{"nothing read", nil, map[string]uint64{}, ""},
		{"grown, sorted", map[string]uint64{"io_exits": 10, "exits": 100, "halt_exits": 5},
			map[string]uint64{"io_exits": 15, "exits": 160, "halt_exits": 5}, " exits=60 io_exits=5"},
		{"born since", map[string]uint64{}, map[string]uint64{"irq_injections": 3}, " irq_injections=3"},
		{"shrunk (a VM replaced) is not growth", map[string]uint64{"exits": 100}, map[string]uint64{"exits": 40}, ""},
		{"gauges at their level", map[string]uint64{"pages_4k": 500, "pages_2m": 3, "exits": 1},
			map[string]uint64{"pages_4k": 400, "pages_2m": 3, "exits": 2}, " exits=1 pages_2m=3 pages_4k=400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kvmGrowth(tt.before, tt.after); got != tt.want {
				t.Fatalf("kvmGrowth = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestProtoCounters(t *testing.T) {
	const snmp = `Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 1000
Tcp: RtoAlgorithm MaxConn InSegs OutSegs RetransSegs
Tcp: 1 -1 500 800 3
Udp: InDatagrams
Udp: 9
`
	const netstat = `TcpExt: SyncookiesSent TCPTimeouts TCPLossProbes
TcpExt: 0 1 4
IpExt: InNoRoutes
IpExt: 0
`
	before := map[string]uint64{}
	agentkit.ParseProtoCounters(snmp, before)
	agentkit.ParseProtoCounters(netstat, before)
	if before["Tcp.RetransSegs"] != 3 || before["TcpExt.TCPLossProbes"] != 4 || before["Ip.InReceives"] != 1000 {
		t.Fatalf("parsed %v", before)
	}
	if _, ok := before["Tcp.MaxConn"]; ok {
		t.Error("kept the negative Tcp.MaxConn")
	}
	after := map[string]uint64{}
	agentkit.ParseProtoCounters(strings.ReplaceAll(snmp, "1 -1 500 800 3", "1 -1 700 1800 5"), after)
	agentkit.ParseProtoCounters(netstat, after)
	after["Ip.InReceives"] = 2000 // not TCP: not said
	if got, want := agentkit.TCPGrowth(before, after), " Tcp.InSegs=200 Tcp.OutSegs=1000 Tcp.RetransSegs=2"; got != want {
		t.Errorf("tcpGrowth = %q, want %q", got, want)
	}
	// A file cut short or out of step is skipped, not misread.
	odd := map[string]uint64{}
	agentkit.ParseProtoCounters("Tcp: InSegs OutSegs\nUdp: 1 2\n", odd)
	if len(odd) != 0 {
		t.Errorf("misread %v", odd)
	}
}
