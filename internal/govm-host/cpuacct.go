package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/govm/govm/internal/agentkit"
)

// Where a transfer's CPU time went, for the network benchmark's host end:
// the VMM's threads (by name: govm names its vCPU and device threads, QEMU
// names its own), this process's, and the CPUs' split from /proc/stat. On
// a host with one CPU for everything (the nested harness pins all to L1's
// CPU 0) the VMM that spends less per byte leaves more to the guest.

// threadCPU is a thread's scheduler accounting from
// /proc/PID/task/TID/schedstat (Documentation/scheduler/sched-stats.rst):
// time on a CPU, time waiting on a run queue, timeslices run.
type threadCPU struct {
	comm              string
	run, wait, slices uint64
}

// threadsCPU reads every thread of process pid.
func threadsCPU(pid int) map[int]threadCPU {
	out := map[int]threadCPU{}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err1 := os.ReadFile(filepath.Join(dir, e.Name(), "comm"))
		st, err2 := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err1 != nil || err2 != nil {
			continue
		}
		var t threadCPU
		if _, err := fmt.Sscan(string(st), &t.run, &t.wait, &t.slices); err != nil {
			continue
		}
		t.comm = strings.TrimSpace(string(comm))
		out[tid] = t
	}
	return out
}

// findProcess is the pid of the newest process named comm, 0 if none.
func findProcess(comm string) int {
	ents, _ := os.ReadDir("/proc")
	best := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(b)) == comm && pid > best {
			best = pid
		}
	}
	return best
}

// cpuAcct is a snapshot of where CPU time has gone so far.
type cpuAcct struct {
	at        time.Time
	vmm, self map[int]threadCPU
	vmmPid    int
	cpus      map[string][]uint64
	kvm       map[string]uint64
	proto     map[string]uint64
	vmmComm   string
	// helper is a process of the VMM's own serving part of its I/O
	// (govm-net), counted with the VMM.
	helper    map[int]threadCPU
	helperPid int
	selfPid   int
	label     string
}

// startCPUAcct snapshots the VMM named vmm (if running) and this process;
// vmm may be VMM+HELPER, a VMM with a helper process counted with it.
func startCPUAcct(label, vmm string) *cpuAcct {
	a := &cpuAcct{at: time.Now(), label: label, vmmComm: vmm, selfPid: os.Getpid()}
	vmm, helper, _ := strings.Cut(vmm, "+")
	a.vmmPid = findProcess(vmm)
	if helper != "" {
		a.helperPid = findProcess(helper)
		a.helper = threadsCPU(a.helperPid)
	}
	a.vmm = threadsCPU(a.vmmPid)
	a.self = threadsCPU(a.selfPid)
	a.cpus = agentkit.CPUTimes()
	a.kvm = kvmStats(a.vmmPid)
	a.proto = agentkit.ProtoCounters()
	return a
}

// say prints what went where since the snapshot, one line per thread
// name and per CPU:
//
//	GOVM-HOST-CPU LABEL vmm|peer NAME threads=N run_ms=R wait_ms=W slices=S
//	GOVM-HOST-CPU LABEL cpuN user=.. system=.. softirq=.. guest=.. idle=.. (ms)
//	GOVM-HOST-KVM LABEL exits=N io_exits=N ... (the VM's KVM counters that grew)
//	GOVM-HOST-TCP LABEL Tcp.OutSegs=N ... (the host's TCP counters that grew)
func (a *cpuAcct) say() {
	ms := time.Since(a.at).Milliseconds()
	fmt.Printf("GOVM-HOST-CPU %s wall_ms=%d vmm=%s pid=%d\n", a.label, ms, a.vmmComm, a.vmmPid)
	sayThreads(a.label, "vmm", a.vmm, threadsCPU(a.vmmPid))
	if a.helperPid != 0 {
		sayThreads(a.label, "vmm", a.helper, threadsCPU(a.helperPid))
	}
	sayThreads(a.label, "peer", a.self, threadsCPU(a.selfPid))
	now := agentkit.CPUTimes()
	names := make([]string, 0, len(now))
	for c := range now {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		was, ok := a.cpus[c]
		if !ok {
			continue
		}
		var d agentkit.CPUSplit
		d.Add(was, now[c])
		fmt.Printf("GOVM-HOST-CPU %s %s %s\n", a.label, c, d)
	}
	if grown := kvmGrowth(a.kvm, kvmStats(a.vmmPid)); grown != "" {
		fmt.Printf("GOVM-HOST-KVM %s%s\n", a.label, grown)
	}
	fmt.Printf("GOVM-HOST-TCP %s%s\n", a.label, agentkit.TCPGrowth(a.proto, agentkit.ProtoCounters()))
}

// kvmDebugfs holds KVM's statistics per VM, one directory per VM named
// PID-FD, one file per counter summed over the VM's vCPUs
// (Documentation/virt/kvm/api.rst, "KVM statistics"; the same counters as
// KVM_GET_STATS_FD, readable from outside the VMM).
const kvmDebugfs = "/sys/kernel/debug/kvm"

// kvmStats reads the counters of every VM process pid has open; none when
// debugfs is not mounted.
func kvmStats(pid int) map[string]uint64 {
	out := map[string]uint64{}
	if pid == 0 {
		return out
	}
	dirs, _ := filepath.Glob(filepath.Join(kvmDebugfs, strconv.Itoa(pid)+"-*"))
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(d, e.Name()))
			if err != nil {
				continue
			}
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				out[e.Name()] += v
			}
		}
	}
	return out
}

// kvmGauges are KVM statistics that are levels, not counts: how much of
// the guest's memory the VM maps with 4 KiB, 2 MiB and 1 GiB pages.
var kvmGauges = map[string]bool{"pages_4k": true, "pages_2m": true, "pages_1g": true}

// kvmGrowth is " name=delta" for each counter that grew, sorted by name,
// and " name=level" for each gauge at its level after.
func kvmGrowth(before, after map[string]uint64) string {
	return agentkit.CounterGrowth(before, after, nil, kvmGauges)
}

// sayThreads prints the growth of each thread name's accounting between
// two snapshots (threads born since count in full).
func sayThreads(label, who string, before, after map[int]threadCPU) {
	grown := make(map[int]threadCPU, len(after))
	for tid, t := range after {
		b := before[tid]
		if b.run > t.run { // not the same thread: the tid was reused
			b = threadCPU{}
		}
		grown[tid] = threadCPU{comm: t.comm, run: t.run - b.run, wait: t.wait - b.wait, slices: t.slices - b.slices}
	}
	sayThreadTotals("GOVM-HOST-CPU "+label+" "+who, grown)
}

// cpuWatchPoll is how often cpuWatch samples the VMM's threads: the
// figures it says are those of the last sample before the VMM exited.
const cpuWatchPoll = 200 * time.Millisecond

// cpuWatch waits up to a minute for a process named vmm, samples its
// threads until it exits and then says, per thread name, the CPU time
// they had used by the last sample:
//
//	GOVM-HOST-CPUWATCH VMM NAME threads=N run_ms=R wait_ms=W slices=S
func cpuWatch(vmm string) error {
	deadline := time.Now().Add(time.Minute)
	pid := 0
	for pid == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("cpuwatch: no process named %s", vmm)
		}
		time.Sleep(cpuWatchPoll / 4)
		pid = findProcess(vmm)
	}
	last := map[int]threadCPU{}
	for {
		now := threadsCPU(pid)
		if len(now) == 0 {
			break
		}
		for tid, t := range now {
			last[tid] = t
		}
		time.Sleep(cpuWatchPoll)
	}
	sayThreadTotals("GOVM-HOST-CPUWATCH "+vmm, last)
	return nil
}

// sayThreadTotals prints each thread name's summed accounting.
func sayThreadTotals(prefix string, threads map[int]threadCPU) {
	type sum struct {
		threads           int
		run, wait, slices uint64
	}
	by := map[string]*sum{}
	for _, t := range threads {
		s := by[t.comm]
		if s == nil {
			s = &sum{}
			by[t.comm] = s
		}
		s.threads++
		s.run += t.run
		s.wait += t.wait
		s.slices += t.slices
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := by[n]
		fmt.Printf("%s %s threads=%d run_ms=%.1f wait_ms=%.1f slices=%d\n",
			prefix, strings.ReplaceAll(n, " ", "_"), s.threads, float64(s.run)/1e6, float64(s.wait)/1e6, s.slices)
	}
}
