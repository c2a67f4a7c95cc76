package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchLine matches the figures agentkit.SayBench says for one side: the guest
// under govm (GOVM-BENCH), under QEMU (relabelled GOVM-QEMU-BENCH) and the
// host (GOVM-HOST-BENCH).
var benchLine = regexp.MustCompile(`(GOVM-(?:HOST-|QEMU-)?BENCH) seq-write-MBps=([0-9.]+) seq-read-MBps=([0-9.]+) rand-4k-read-IOPS=([0-9.]+) buffered=(true|false)`)

// BenchmarkVirtioBlk measures a raw virtio disk from inside the guest
// (O_DIRECT sequential 1 MiB writes and reads, 4 KiB random reads) under
// govm and under QEMU (-accel kvm, virtio-blk-pci on the same file, its
// default cache mode, which like govm's goes through the host's page
// cache), and the same image file from the host that runs them (inside L1
// when nested), all with the same code, and reports each and govm's ratios
// (1 means the disk costs the guest nothing). Nested, the image lives on
// L1's tmpfs, so the host side reads memory through the page cache: the
// ratio then says what the whole virtual path costs. Each figure is the
// median, min and max of ioRounds rounds.
func BenchmarkVirtioBlk(b *testing.B) {
	r := testRunner(b)
	qemu := "export PATH=$PATH:/usr/bin\n" + // L1 keeps QEMU there, off its PATH
		"for a in $(seq " + strconv.Itoa(bootTries) + "); do\n" +
		"  govm-host cpuwatch qemu-system-x86 &\n" +
		"  timeout -s KILL " + qemuLimit + " qemu-system-x86_64 -accel kvm -cpu " + qemuCPU + " -m 512M -smp 1" +
		" -nodefaults -no-user-config -display none -serial file:/tmp/qemu-blk.log -no-reboot -L /usr/share/qemu" +
		" -kernel {bzImage} -initrd {initrd} -append '" + strings.Replace(bootCmdline, "hang", "diskbench", 1) + "'" +
		" -drive file={dir}/raw.img,format=raw,if=none,id=d0 -device virtio-blk-pci,drive=d0\n" +
		"  grep -q 'stack guard page was hit' /tmp/qemu-blk.log && { echo GOVM-SPOILED qemu; continue; }\n" +
		"  grep -a GOVM-BENCH /tmp/qemu-blk.log | sed 's/GOVM-BENCH/GOVM-QEMU-BENCH/'; break\n" +
		"done\n"
	names := []string{"blk-seq-write-MBps", "blk-seq-read-MBps", "blk-rand-4k-read-IOPS"}
	for range b.N {
		var rounds []map[string]float64
		for round := 1; round <= ioRounds; round++ {
			res, err := r.Run(context.Background(), Case{
				Args: []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M",
					"--disk", "{dir}/raw.img", "--append", "govm.action=diskbench", "--timeout", "4m"},
				Timeout:   12 * time.Minute,
				NeedPeers: true,
				// cpuwatch says where each VMM's CPU time went, per thread
				// name, over its whole run; govm's goes to a file, since in
				// direct mode Before's shell must not keep its output open.
				Before: "dd if=/dev/zero of={dir}/raw.img bs=1M count=64 2>/dev/null\n" +
					"govm-host cpuwatch govm >{dir}/cpuwatch.txt 2>&1 &\n",
				After: "for i in $(seq 20); do [ -s {dir}/cpuwatch.txt ] && break; sleep 0.2; done; cat {dir}/cpuwatch.txt\n" +
					qemu + "wait\ngovm-host bench {dir}/raw.img",
			})
			if errors.Is(err, errEmulatorFault) {
				benchNote(b, "round %d: every attempt was spoiled by the emulator: %v", round, err)
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			fig := map[string][3]float64{}
			for _, m := range benchLine.FindAllStringSubmatch(res.Output, -1) {
				var f [3]float64
				for i := range f {
					f[i], _ = strconv.ParseFloat(m[i+2], 64)
				}
				fig[m[1]] = f
			}
			guest, okG := fig["GOVM-BENCH"]
			host, okH := fig["GOVM-HOST-BENCH"]
			if !okG || !okH || res.GovmExit != 0 {
				b.Fatalf("govm exit %d; figures guest %v host %v; console tail:\n%s", res.GovmExit, okG, okH, tail(res.Output, 40))
			}
			b.Logf("round %d: CPU time per thread name over each VMM's run:\n%s", round, strings.Join(cpuWatchLine.FindAllString(res.Output, -1), "\n"))
			qemuFig, okQ := fig["GOVM-QEMU-BENCH"]
			if !okQ {
				benchNote(b, "round %d: no figures from QEMU (its guest failed %d times)", round, bootTries)
			}
			figs := map[string]float64{}
			for i, n := range names {
				figs["govm."+n] = guest[i]
				figs["host."+n] = host[i]
				if okQ {
					figs["qemu."+n] = qemuFig[i]
				}
			}
			rounds = append(rounds, figs)
		}
		reportRounds(b, rounds)
	}
}

// ioRounds is how many times the disk and network benchmarks run each
// VMM (a fresh L1 each round, govm and QEMU taking turns in it): nested
// figures swing up to 2x from run to run, so each is a median with its
// min and max.
const ioRounds = 5

// reportRounds logs each round's figures (a GOVM-ROUND line each) and
// reports each measure's median, min and max over the rounds (each a map
// from "who.measure" to that round's figure), and govm's ratio to each
// peer round by round as paired-PEER.measure: both ran in the same L1, so
// the pair cancels most of the emulated host's swing between rounds. It
// skips if govm has no figures.
func reportRounds(b *testing.B, rounds []map[string]float64) {
	b.Helper()
	for i, round := range rounds {
		var line []string
		for _, unit := range slices.Sorted(maps.Keys(round)) {
			line = append(line, fmt.Sprintf("%s=%.4g", unit, round[unit]))
		}
		b.Logf("GOVM-ROUND %d %s", i+1, strings.Join(line, " "))
	}
	figs, pairs := splitRounds(rounds)
	govm := false
	for _, unit := range slices.Sorted(maps.Keys(figs)) {
		reportSpread(b, unit, figs[unit])
		govm = govm || strings.HasPrefix(unit, "govm.")
	}
	for _, unit := range slices.Sorted(maps.Keys(pairs)) {
		reportSpread(b, unit, pairs[unit])
	}
	if !govm {
		benchNote(b, "skipped: no round gave govm's figures")
		b.SkipNow()
	}
}

// splitRounds gathers the rounds' figures by "who.measure", and govm's
// ratio to each peer in every round where both have the measure, by
// "paired-PEER.measure".
func splitRounds(rounds []map[string]float64) (figs, pairs map[string][]float64) {
	figs, pairs = map[string][]float64{}, map[string][]float64{}
	for _, round := range rounds {
		for _, unit := range slices.Sorted(maps.Keys(round)) {
			v := round[unit]
			figs[unit] = append(figs[unit], v)
			who, measure, _ := strings.Cut(unit, ".")
			if g, ok := round["govm."+measure]; ok && who != "govm" && v != 0 {
				pairs["paired-"+unit] = append(pairs["paired-"+unit], g/v)
			}
		}
	}
	return figs, pairs
}

// bootMarker is the serial console line the guest agent prints first:
// every VMM can show it, so all three are timed to the same point.
const bootMarker = "GOVM-AGENT-START"

// bootCmdline is what every VMM gives the guest kernel (govm's default
// command line plus the agent's action: wait to be killed).
const bootCmdline = "console=ttyS0 panic=-1 reboot=k govm.action=hang"

// gokvmCmdline is what gokvm needs on top: without ACPI and with its legacy
// virtio, the kernel must not look for an IO-APIC, ACPI or a PIT-calibrated
// TSC (gokvm's own default command line, less its debug logging).
const gokvmCmdline = "noapic noacpi notsc nowatchdog nmi_watchdog=0 lapic tsc_early_khz=2000 pci=realloc=off virtio_pci.force_legacy=1 rdinit=/init"

// qemuCPU is the CPU QEMU offers its guest: the host's, with what govm
// hides too when KVM runs under an emulator (XSAVE and the state it
// manages, protection keys; see machine.hideXSave) and without the KVM
// paravirtual features govm does not offer, so both guests run the same
// kernel paths.
const qemuCPU = "host,-xsave,-xsavec,-xsaves,-xsaveopt,-xgetbv1,-avx,-avx2,-fma,-f16c,-pku,-vaes,-avx512f," +
	"kvm-pv-eoi=off,kvm-asyncpf=off,kvm-asyncpf-int=off,kvm-steal-time=off,kvm-pv-tlb-flush=off,kvm-pv-ipi=off," +
	"kvm-pv-sched-yield=off,kvm-poll-control=off,kvm-pv-unhalt=off"

// bootConfig is one row group of the boot benchmark.
type bootConfig struct {
	name   string // in the measure's name
	kernel string // {bzImage} or {vmlinux}
	cpus   int
	vmms   []string
}

// bootCommand is the command line that boots vmm in config c.
func bootCommand(vmm string, c bootConfig) string {
	cpus := strconv.Itoa(c.cpus)
	switch vmm {
	case "govm":
		return "govm run --kernel " + c.kernel + " --initrd {initrd} --mem 512M --cpus " + cpus + " --append govm.action=hang"
	case "qemu":
		return "qemu-system-x86_64 -accel kvm -cpu " + qemuCPU + " -m 512M -smp " + cpus +
			" -nodefaults -no-user-config -display none -serial stdio -no-reboot -L /usr/share/qemu" +
			" -kernel " + c.kernel + " -initrd {initrd} -append '" + bootCmdline + "'"
	case "gokvm":
		return "gokvm boot -k " + c.kernel + " -i {initrd} -m 512M -c " + cpus + " -p '" + bootCmdline + " " + gokvmCmdline + "'"
	}
	panic("unknown VMM " + vmm)
}

// bootRounds is how many times each VMM boots per configuration; bootTries
// bounds the attempts at one boot that the emulator's fault (tcgFault)
// spoils, in any of the VMMs' guests.
const (
	bootRounds = 3
	bootTries  = 3
)

// qemuLimit bounds one QEMU run of the disk or network benchmark, in
// seconds. Nested, a good run takes about a minute; QEMU's guest now and
// then stalls under the emulator (seen in boots and in disk I/O alike),
// and a stalled run is cut off here and tried again.
const qemuLimit = "150"

// bootLine matches a govm-host boot report.
var bootLine = regexp.MustCompile(`GOVM-HOST-BOOT (\w+)-(\d+) (?:ms=([0-9.]+) peak_kb=\d+ guest_kb=\d+ overhead_kb=(\d+)|failed=(.*))`)

// BenchmarkBoot boots the same kernel and u-root initramfs with govm, QEMU
// (-accel kvm, its PC machine and SeaBIOS) and gokvm (the version go.mod's
// tool directive pins), in turns, on the same host (one L1 per
// configuration when nested): a bzImage with 1 and 2 vCPUs, and an ELF
// vmlinux (govm, and QEMU through PVH). Each boot is timed by the same
// code (govm-host boot) from exec to the agent's first console line, and
// at that line it reads the VMM's peak RSS less its guest RAM's resident
// size: the VMM's memory overhead. It reports the median, min and max of
// each, the boots that failed, and govm's time over each peer's round by
// round (paired-PEER.boot-...; internal/benchtable makes the table and judges
// the goals on those).
func BenchmarkBoot(b *testing.B) {
	r := testRunner(b)
	all := []string{"govm", "qemu", "gokvm"}
	configs := []bootConfig{
		{"bzimage-1cpu", "{bzImage}", 1, all},
		{"bzimage-2cpu", "{bzImage}", 2, all},
		{"vmlinux-1cpu", "{vmlinux}", 1, []string{"govm", "qemu"}},
	}
	// L1 keeps the peers in /usr/bin, off its PATH; a direct run finds
	// govm, gokvm and the agent in build/.
	path := "$PATH:/usr/bin"
	if r.Mode == Direct {
		path += ":" + r.Assets.Dir
	}
	for range b.N {
		outs := onHosts(b, r, len(configs), func(h int) Case {
			c := configs[h]
			script := "export PATH=" + path + "\n" +
				"boot() { name=$1; shift; for a in $(seq " + strconv.Itoa(bootTries) + "); do\n" +
				"  govm-host boot /tmp/$name " + bootMarker + " 180 \"$@\" >/tmp/$name.res\n" +
				"  if grep -q 'stack guard page was hit' /tmp/$name.log; then echo \"GOVM-SPOILED $name\"; continue; fi\n" +
				"  cat /tmp/$name.res; return; done; }\n"
			for i := 1; i <= bootRounds; i++ {
				for _, vmm := range c.vmms {
					script += fmt.Sprintf("boot %s-%d %s\n", vmm, i, bootCommand(vmm, c))
				}
			}
			return Case{Command: "check", NeedPeers: true, NeedVMLinux: c.kernel == "{vmlinux}",
				Timeout: 30 * time.Minute, After: script}
		})
		if b.Failed() {
			return
		}
		for h, c := range configs {
			overhead := map[string][]float64{}
			rounds := map[string]map[string]float64{} // round -> "vmm.boot-..." -> ms
			unit := "boot-" + c.name + "-ms"
			for _, m := range bootLine.FindAllStringSubmatch(outs[h], -1) {
				if m[5] != "" {
					benchNote(b, "%s %s: %s", c.name, m[1], m[5])
					continue
				}
				v, _ := strconv.ParseFloat(m[3], 64)
				kb, _ := strconv.ParseFloat(m[4], 64)
				overhead[m[1]] = append(overhead[m[1]], kb)
				if rounds[m[2]] == nil {
					rounds[m[2]] = map[string]float64{}
				}
				rounds[m[2]][m[1]+"."+unit] = v
			}
			// ms holds each VMM's boot times; pairs govm's over each
			// peer's in the same round: the VMMs boot one after another
			// in one L1, so the pair cancels the L1's drift between rounds.
			ms, pairs := splitRounds(slices.Collect(maps.Values(rounds)))
			if len(ms["govm."+unit]) == 0 {
				b.Fatalf("%s: no govm boot reached the marker:\n%s", c.name, tail(outs[h], 40))
			}
			for _, vmm := range c.vmms {
				booted := ms[vmm+"."+unit]
				b.ReportMetric(float64(bootRounds-len(booted)), vmm+".failed-boots-"+c.name)
				if len(booted) == 0 {
					continue
				}
				reportSpread(b, vmm+"."+unit, booted)
				reportSpread(b, vmm+".overhead-"+c.name+"-kB", overhead[vmm])
			}
			for _, u := range slices.Sorted(maps.Keys(pairs)) {
				reportSpread(b, u, pairs[u])
			}
		}
	}
}

// reportSpread reports the median of v as unit, and its min and max as
// unit.min and unit.max (internal/benchtable reads them).
func reportSpread(b *testing.B, unit string, v []float64) {
	s := slices.Sorted(slices.Values(v))
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	b.ReportMetric(med, unit)
	b.ReportMetric(s[0], unit+".min")
	b.ReportMetric(s[len(s)-1], unit+".max")
}

// netBenchBytes is what each side sends in BenchmarkVirtioNet (the nested
// emulator's fault rate grows with the guest's network time).
const netBenchBytes = 16 << 20

// netFigures matches a guest agent's transfer report; relabelled
// GOVM-QEMU-NET-* for QEMU's guest.
var netFigures = regexp.MustCompile(`GOVM-(QEMU-)?NET-(RX|TX) \S+ bytes=(\d+) crc32c=([0-9a-f]{8}) mbps=([0-9.]+)`)

// hostSums matches the host side's hashes of what it sent and received.
var hostSums = regexp.MustCompile(`GOVM-HOST-(RX|TX)SUM (govm|qemu) ([0-9a-f]{8})`)

// cpuWatchLine is a line of govm-host cpuwatch's report.
var cpuWatchLine = regexp.MustCompile(`GOVM-HOST-CPUWATCH [^\r\n]*`)

// guestCost is a line of the guest agent's own accounting of a transfer
// (its CPU time and interrupts), under govm or (relabelled) QEMU.
var guestCost = regexp.MustCompile(`GOVM-(?:QEMU-)?NET-(?:GUEST-|COUNTERS eth)[^\r\n]*`)

// hostCPU is a line of the network servers' CPU accounting, or of the
// growth of KVM's counters for the VMM's VM and of the host's TCP
// counters over the transfer.
var hostCPU = regexp.MustCompile(`GOVM-HOST-(?:CPU|KVM|TCP) [^\r\n]*`)

// vmmThreads matches a line of the servers' CPU accounting that vmmCPU
// sums: a group of the VMM's threads by name, with the CPU time it ran
// (schedstat, exact).
var (
	vmmThreads = regexp.MustCompile(`GOVM-HOST-CPU (\d+) vmm (\S+) threads=\d+ run_ms=([0-9.]+)`)
	cpuHeader  = regexp.MustCompile(`GOVM-HOST-CPU (\d+) wall_ms=`)
	// vcpuThread names a vCPU thread: govm's, or QEMU's "CPU 0/KVM".
	vcpuThread = regexp.MustCompile(`^(?:govm-vcpu\d+|CPU_\d+/KVM)$`)
)

// transferCPU is what one transfer cost a VMM's process, in ms of CPU.
type transferCPU struct {
	// Process is all its threads' time, its guest's included.
	Process float64
	// IO is its threads' time but its vCPUs': the device model's cost
	// (virtqueues, the TAP, its runtime or main loop). It leaves out the
	// guest's time without having to measure it: L1 only samples that at
	// its scheduler tick, and the sample leans with how the threads are
	// scheduled (under SCHED_BATCH a vCPU's "guest" ticks exceeded its
	// whole exact run time).
	IO float64
}

// vmmCPU is, for each server port, the CPU time the VMM's threads took
// during its transfer. A port reported more than once (a QEMU attempt
// spoiled and run again) counts as its last report.
func vmmCPU(out string) map[string]transferCPU {
	res := map[string]transferCPU{}
	for _, line := range strings.Split(out, "\n") {
		if m := cpuHeader.FindStringSubmatch(line); m != nil {
			res[m[1]] = transferCPU{} // a fresh report
		} else if m := vmmThreads.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[3], 64)
			c := res[m[1]]
			c.Process += v
			if !vcpuThread.MatchString(m[2]) {
				c.IO += v
			}
			res[m[1]] = c
		}
	}
	return res
}

// BenchmarkVirtioNet moves data over TCP between the guest and the host
// both ways through virtio-net on a TAP, under govm and under QEMU
// (virtio-net-pci on its userspace TAP backend, vhost off: a VMM's own
// data path against a VMM's), on the same host (L1 when nested), and
// reports each one's throughput in Mbit/s, as the guest agent measured
// it. Every transfer's CRC-32C is checked on both ends: a fast wrong
// transfer does not count. Each figure is the median, min and max of
// ioRounds rounds.
func BenchmarkVirtioNet(b *testing.B) {
	r := testRunner(b)
	if r.Mode == Direct && os.Geteuid() != 0 {
		b.Skip("TAP devices need root (CAP_NET_ADMIN) in direct mode")
	}
	// QEMU opens (creating) the TAP as it starts; the host side gets its
	// address then, long before the guest has booted.
	netBench(b, r, netBenchSetup{
		govmNet: "tap=govm0,mac=" + netBenchMAC + ",host-ip=10.0.2.1/24", govmHost: "10.0.2.1", govmComm: "govm", metric: "net",
		qemuNetdev: "tap,id=n0,ifname=qtap0,script=no,downscript=no,vhost=off", qemuGuest: "10.0.4.15", qemuHost: "10.0.4.1",
		qemuStarted: "for i in $(seq 50); do [ -e /sys/class/net/qtap0 ] && break; sleep 0.1; done\n" +
			"ip addr add 10.0.4.1/24 dev qtap0; ip link set qtap0 up\n",
	})
}

// BenchmarkUserNet is BenchmarkVirtioNet through user-mode networks:
// govm's --net user (govm-net, gvisor-tap-vsock's stack) against QEMU's
// -netdev user (libslirp), both with QEMU's layout, the host's servers
// reached at the gateway 10.0.2.2 (the host's loopback). govm's CPU
// figures count govm-net's threads with govm's.
func BenchmarkUserNet(b *testing.B) {
	r := testRunner(b)
	netBench(b, r, netBenchSetup{
		govmNet: "user,mac=" + netBenchMAC, govmHost: "10.0.2.2", govmComm: "govm+govm-net", metric: "usernet",
		qemuNetdev: "user,id=n0", qemuGuest: "10.0.2.15", qemuHost: "10.0.2.2",
	})
}

// netBenchMAC is the benchmarks' guest NIC.
const netBenchMAC = "52:54:00:12:34:01"

// netBenchSetup is how a network benchmark connects each VMM's guest to
// the host's servers.
type netBenchSetup struct {
	govmNet, govmHost string // govm's --net, and the host's address from its guest (the guest is 10.0.2.15)
	govmComm          string // the processes whose CPU time is govm's (VMM+HELPER)
	qemuNetdev        string // QEMU's -netdev, with id=n0
	qemuGuest         string
	qemuHost          string
	qemuStarted       string // shell run once QEMU has started
	metric            string // the throughput figures' prefix
}

// netBench runs a network benchmark's rounds: govm's transfers, then
// QEMU's, in the same L1.
func netBench(b *testing.B, r *Runner, st netBenchSetup) {
	const mac = netBenchMAC
	n := strconv.Itoa(netBenchBytes)
	spec := func(guest, host, rx, tx string) string {
		return "govm.net=" + strings.Join([]string{mac, guest + "/24", host, rx, tx, n}, ",")
	}
	// The host serves random bytes on the RX port and hashes what arrives
	// on the TX port.
	// Each server also says where CPU time went during its transfer: the
	// VMM's threads by name, the server's own, each CPU's split.
	// The host's TCP leaves HyStart off, as the guest agent does (see
	// nettest.go: its slow-start exit is the emulator's jitter, not the
	// VMM's).
	serve := func(who, rx, tx string) string {
		p := "{dir}/" + who
		comm := map[string]string{"govm": st.govmComm, "qemu": "qemu-system-x86"}[who]
		// L1 starts with lo down; a user network's host is its loopback.
		return "ip link set lo up\n" +
			"echo 0 > /sys/module/tcp_cubic/parameters/hystart\n" +
			"head -c " + n + " /dev/urandom > " + p + ".rx\n" +
			"govm-host sum " + p + ".rx > " + p + ".rxsum\n" +
			"govm-host send " + rx + " " + p + ".rx " + comm + " & servers=\"$servers $!\"\n" +
			"govm-host recv " + tx + " " + p + ".txsum " + comm + " & servers=\"$servers $!\"\n"
	}
	sums := func(who string) string {
		p := "{dir}/" + who
		return "for i in $(seq 10); do [ -s " + p + ".txsum ] && break; sleep 1; done\n" +
			"echo GOVM-HOST-RXSUM " + who + " $(cat " + p + ".rxsum)\n" +
			"echo GOVM-HOST-TXSUM " + who + " $(cat " + p + ".txsum 2>/dev/null)\n"
	}
	// A run whose guest the emulator spoiled or stalled is tried again
	// with fresh servers.
	qemu := "export PATH=$PATH:/usr/bin\n" +
		"for a in $(seq " + strconv.Itoa(bootTries) + "); do\n" +
		"rm -f {dir}/qemu.txsum; servers=\"\"\n" +
		serve("qemu", "5010", "5011") +
		"timeout -s KILL " + qemuLimit + " qemu-system-x86_64 -accel kvm -cpu " + qemuCPU + " -m 512M -smp 1" +
		" -nodefaults -no-user-config -display none -serial file:/tmp/qemu-net.log -no-reboot -L /usr/share/qemu" +
		" -name qemu,debug-threads=on" + // its threads named for what they serve, as govm's are
		" -kernel {bzImage} -initrd {initrd} -append '" + strings.Replace(bootCmdline, "hang", "nettest", 1) + " " + spec(st.qemuGuest, st.qemuHost, "5010", "5011") + "'" +
		" -netdev " + st.qemuNetdev + " -device virtio-net-pci,netdev=n0,romfile=,mac=" + mac + " &\n" +
		"q=$!\n" +
		st.qemuStarted +
		"wait $q\n" +
		"if grep -q 'GOVM-NET-TX ' /tmp/qemu-net.log; then break; fi\n" +
		"echo GOVM-SPOILED qemu; kill $servers 2>/dev/null\n" +
		"done\n" +
		"grep -a 'GOVM-NET-' /tmp/qemu-net.log | sed 's/GOVM-NET-/GOVM-QEMU-NET-/'\n" +
		sums("qemu")
	for range b.N {
		var rounds []map[string]float64
		for round := 1; round <= ioRounds; round++ {
			res, err := r.Run(context.Background(), Case{
				Args: []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M", "--timeout", "200s",
					"--net", st.govmNet,
					"--append", "govm.action=nettest " + spec("10.0.2.15", st.govmHost, "5000", "5001")},
				Timeout:   14 * time.Minute,
				NeedPeers: true,
				Before:    serve("govm", "5000", "5001"),
				After:     sums("govm") + qemu,
			})
			if errors.Is(err, errEmulatorFault) {
				benchNote(b, "round %d: every attempt was spoiled by the emulator: %v", round, err)
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			figs := map[string]float64{}
			rounds = append(rounds, figs)
			host := map[string]string{}
			for _, m := range hostSums.FindAllStringSubmatch(res.Output, -1) {
				host[m[2]+m[1]] = m[3]
			}
			dirs := map[string]string{"RX": st.metric + "-host-to-guest-Mbps", "TX": st.metric + "-guest-to-host-Mbps"}
			got := map[string]bool{}
			for _, m := range netFigures.FindAllStringSubmatch(res.Output, -1) {
				who := "govm"
				if m[1] != "" {
					who = "qemu"
				}
				if m[3] != n || m[4] != host[who+m[2]] {
					b.Logf("%s %s: %s bytes with CRC-32C %s, the host's end has %q", who, m[2], m[3], m[4], host[who+m[2]])
					continue
				}
				mbps, _ := strconv.ParseFloat(m[5], 64)
				figs[who+"."+dirs[m[2]]] = mbps
				got[who+m[2]] = true
			}
			if !got["govmRX"] || !got["govmTX"] || res.GovmExit != 0 {
				b.Fatalf("govm exit %d, checked transfers %v; console tail:\n%s", res.GovmExit, got, tail(res.Output, 120))
			}
			// The VMM's CPU time per transfer, by server port.
			cost := vmmCPU(res.Output)
			for port, dir := range map[string]string{"5000": "govm.%s-host-to-guest", "5001": "govm.%s-guest-to-host",
				"5010": "qemu.%s-host-to-guest", "5011": "qemu.%s-guest-to-host"} {
				if c, ok := cost[port]; ok && c.Process > 0 {
					figs[fmt.Sprintf(dir, "process-cpu-ms")] = c.Process
					figs[fmt.Sprintf(dir, "io-cpu-ms")] = c.IO
				}
			}
			if len(res.NICs) > 0 {
				b.Logf("govm NIC counters: %s", res.NICs)
			}
			b.Logf("round %d: where CPU time went during each transfer (ports: govm 5000 host to guest, 5001 guest to host; QEMU 5010, 5011):\n%s",
				round, strings.Join(hostCPU.FindAllString(res.Output, -1), "\n"))
			b.Logf("round %d: what each transfer cost the guest (RX host to guest, TX guest to host):\n%s",
				round, strings.Join(guestCost.FindAllString(res.Output, -1), "\n"))
			if !got["qemuRX"] || !got["qemuTX"] {
				benchNote(b, "round %d: QEMU's transfers incomplete (%v)", round, got)
			}
		}
		reportRounds(b, rounds)
	}
}

// benchNote says why a benchmark has fewer figures than it should (a
// skip, a peer's failed runs) on a line of its own in the output, where
// internal/benchtable finds it and prints it under the table: go test -bench
// shows a benchmark's logs and skips only with -v.
func benchNote(b *testing.B, format string, args ...any) {
	b.Helper()
	msg := fmt.Sprintf(format, args...)
	b.Log(msg)
	fmt.Printf("BENCH-NOTE %s: %s\n", strings.TrimPrefix(b.Name(), "Benchmark"), strings.ReplaceAll(msg, "\n", " "))
}
