package e2e

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// soakScript boots {n} pairs of guests one after another in one L1: the
// same kernel and agent initramfs under govm and then under QEMU, each
// with a raw disk, a read-only disk and a NIC on a TAP of its own (each
// VMM makes it and gives the host its address);
// the guest agent writes and checks the disks, pings the host and powers
// off. Unless {pin} is 1 it first undoes the harness's pinning to L1's
// CPU 0, so both VMMs meet the nested emulator as a user's job would.
// KVM's tracepoints in L1 (exits with their reason and RIP, injected
// interrupts and exceptions) record each boot; a boot that fails prints
// the trace's tail, so a triple fault's last exits and injections are on
// record whichever VMM ran it. In the first {nvariant} rounds a third
// boot, variant, runs govm with {variantenv} in its environment and
// {variantflags} on its command line: an experiment's arm beside the
// others in the same L1s. One GOVM-SOAK line per boot, never a guest's
// whole console (see crashScript).
const soakScript = `export PATH=$PATH:/usr/bin
[ {pin} = 1 ] || taskset -p -c 0-1 $$ >/dev/null
printf '#!/bin/sh\nip addr add 10.0.9.1/24 dev "$1" && ip link set "$1" up\n' >{dir}/ifup && chmod +x {dir}/ifup
T=/sys/kernel/tracing
[ -d $T/events ] || mount -t tracefs tracefs $T
trace=0
if [ {trace} = 1 ] && [ -d $T/events/kvm ]; then
	echo 4096 > $T/buffer_size_kb
	for e in kvm_exit kvm_inj_virq kvm_inj_exception kvm_set_irq kvm_msi_set_irq; do
		echo 1 > $T/events/kvm/$e/enable
	done
	trace=1
fi
net=52:54:00:12:34:51,10.0.9.15/24,10.0.9.1
i=0
while [ $i -lt {n} ]; do
	i=$((i + 1))
	arms="govm qemu"
	[ $i -le {nvariant} ] && arms="$arms variant"
	for vmm in $arms; do
		env=; flags=; [ $vmm = variant ] && env="{variantenv}" && flags="{variantflags}"
		dd if=/dev/zero of={dir}/raw.img bs=1M count=16 2>/dev/null
		dd if=/dev/zero of={dir}/ro.img bs=1M count=2 2>/dev/null
		[ $trace = 1 ] && echo > $T/trace
		start=$(date +%s)
		if [ $vmm != qemu ]; then
			env $env govm run $flags --kernel {bzImage} --initrd {initrd} --mem 512M --cpus {cpus} \
				--disk {dir}/raw.img --disk {dir}/ro.img,ro --net tap=govmsoak0,mac=52:54:00:12:34:51,host-ip=10.0.9.1/24 \
				--append govm.net=$net --append govm.action=soak --timeout 150s </dev/null >{dir}/boot.txt 2>&1
		else
			timeout -s KILL 150 qemu-system-x86_64 -accel kvm -cpu {qemucpu} -m 512M -smp {cpus} \
				-nodefaults -no-user-config -display none -serial file:{dir}/boot.txt -no-reboot -L /usr/share/qemu \
				-kernel {bzImage} -initrd {initrd} -append "{cmdline} govm.net=$net govm.action=soak" \
				-drive file={dir}/raw.img,format=raw,if=none,id=d0 -device virtio-blk-pci,drive=d0 \
				-drive file={dir}/ro.img,format=raw,if=none,id=d1,readonly=on -device virtio-blk-pci,drive=d1 \
				-netdev tap,id=n0,ifname=govmsoak0,script={dir}/ifup,downscript=no -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:51,romfile= \
				</dev/null >{dir}/qemu.txt 2>&1
		fi
		rc=$?
		secs=$(( $(date +%s) - start ))
		ok=0
		grep -q 'GOVM-DISK-WROTE vda ok=true' {dir}/boot.txt && grep -q 'GOVM-DISK-RO-WRITE vdb refused=true' {dir}/boot.txt \
			&& grep -q 'host=10.0.9.1 ok=true' {dir}/boot.txt && grep -q GOVM-SOAK-DONE {dir}/boot.txt && ok=1
		agent=0; grep -q GOVM-AGENT-START {dir}/boot.txt && agent=1
		kind=failed
		if [ $ok = 1 ] && { [ $vmm = qemu ] || [ $rc = 0 ]; }; then kind=ok
		elif grep -q 'stack guard page was hit' {dir}/boot.txt; then kind=guard
		elif grep -q ' if=0 runnable;.* isr 0x[0-9a-f].*f3 90 <' {dir}/boot.txt; then kind=irqdeadlock
		elif [ $trace = 1 ] && grep -q 'reason shutdown' $T/trace; then kind=triplefault
		elif grep -q 'Kernel panic' {dir}/boot.txt; then kind=panic
		elif [ $rc = 137 ] || grep -q 'govm: timeout after' {dir}/boot.txt; then kind=hang
		fi
		echo "GOVM-SOAK vmm=$vmm boot=$i kind=$kind rc=$rc agent=$agent secs=$secs"
		if [ $kind != ok ]; then {
			grep -aE '^govm:|^ *vCPU [0-9]+:|GOVM-(DISK|NET)-(ERROR|PING|WROTE|RO-WRITE)|Kernel panic|RIP:|^\[ *[0-9.]+\] (BUG|Oops|WARNING)' {dir}/boot.txt | head -n 10 | sed "s/^/GOVM-SOAK-DETAIL $vmm-$i console: /"
			tail -n 3 {dir}/boot.txt | sed "s/^/GOVM-SOAK-DETAIL $vmm-$i tail: /"
			[ $vmm = qemu ] && head -n 3 {dir}/qemu.txt | sed "s/^/GOVM-SOAK-DETAIL $vmm-$i qemu: /"
			[ $trace = 1 ] && grep -v '^#' $T/trace | tail -n {tracelines} | sed "s/^/GOVM-SOAK-DETAIL $vmm-$i trace: /"
		} | sed 's/stack guard page/stack-guard-page/'; fi
	done
done`

var (
	soakLine   = regexp.MustCompile(`GOVM-SOAK vmm=(\w+) boot=(\d+) kind=(\w+) rc=(\d+) agent=(\d) secs=(\d+)`)
	soakDetail = regexp.MustCompile(`GOVM-SOAK-DETAIL .*`)
)

// soakKinds are how a soak boot can end, as soakScript names them: ok, the
// emulator's two signatures (guard, irqdeadlock), a triple fault (KVM's
// shutdown exit in L1's trace), a kernel panic, a hang, and failed: none
// of those, yet not every check passed.
var soakKinds = []string{"ok", "guard", "irqdeadlock", "triplefault", "panic", "hang", "failed"}

// TestSoak (make soak; skipped unless $GOVM_SOAK is set): $GOVM_SOAK
// pairs of boots, govm and QEMU alternately in the same L1s, each with
// disks and a NIC and each checked, consecutive on one host per CPU
// (nested: L1 guests side by side), unpinned unless $GOVM_SOAK_PIN is 1.
// It prints both VMMs' boots by how they ended and fails when govm failed
// a check in a guest that ran (a wrong result is never the emulator's) or
// when govm's failure rate exceeds QEMU's beyond chance: a one-sided
// Fisher exact test on the two failure counts at p < 0.05.
// $GOVM_SOAK_VARIANT adds that many boots of govm with the environment
// $GOVM_SOAK_VARIANT_ENV and the flags $GOVM_SOAK_VARIANT_FLAGS (an
// experiment, e.g. GOVM_DEBUG_HUGEPAGES=off), reported beside the others.
func TestSoak(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GOVM_SOAK"))
	if n <= 0 {
		t.Skip("set GOVM_SOAK=N (make soak) to run N boots of each VMM")
	}
	r := testRunner(t)
	if r.Mode == Direct {
		t.Skip("the soak compares govm with QEMU inside nested L1 guests; direct mode has no such pair")
	}
	hosts := max(1, min(cap(r.Slots), n))
	rep := strings.NewReplacer("{cpus}", envOr("GOVM_SOAK_CPUS", "1"), "{pin}", envOr("GOVM_SOAK_PIN", "0"),
		"{trace}", envOr("GOVM_SOAK_TRACE", "1"), "{tracelines}", envOr("GOVM_SOAK_TRACE_LINES", "40"),
		"{qemucpu}", qemuCPU, "{cmdline}", strings.TrimSuffix(bootCmdline, " govm.action=hang"))
	nv, _ := strconv.Atoi(os.Getenv("GOVM_SOAK_VARIANT"))
	venv, vflags := os.Getenv("GOVM_SOAK_VARIANT_ENV"), os.Getenv("GOVM_SOAK_VARIANT_FLAGS")
	share := func(total, h int) int {
		if h < total%hosts {
			return total/hosts + 1
		}
		return total / hosts
	}
	outs := onHosts(t, r, hosts, func(h int) Case {
		boots, bv := share(n, h), share(nv, h)
		script := strings.NewReplacer("{n}", strconv.Itoa(boots), "{nvariant}", strconv.Itoa(bv),
			"{variantenv}", venv, "{variantflags}", vflags).Replace(rep.Replace(soakScript))
		return Case{Command: "version", After: script, NeedPeers: true, Timeout: time.Duration(boots*2+bv) * 3 * time.Minute}
	})
	out := strings.Join(outs, "\n")
	counts := map[string]map[string]int{"govm": {}, "qemu": {}, "variant": {}}
	secs := map[string][]int{}
	for _, m := range soakLine.FindAllStringSubmatch(out, -1) {
		vmm, kind := m[1], m[3]
		counts[vmm][kind]++
		if kind == "ok" {
			s, _ := strconv.Atoi(m[6])
			secs[vmm] = append(secs[vmm], s)
		}
		if kind != "ok" {
			t.Logf("%s boot %s: %s (exit %s, agent started %s)", vmm, m[2], kind, m[4], m[5])
		}
		if vmm != "qemu" && kind == "failed" && m[5] == "1" {
			t.Errorf("govm boot %s: the guest ran but a check failed (exit %s)", m[2], m[4])
		}
	}
	for _, l := range soakDetail.FindAllString(out, -1) {
		t.Log(l)
	}
	total := map[string]int{}
	want := map[string]int{"govm": n, "qemu": n, "variant": nv}
	for _, vmm := range []string{"govm", "qemu", "variant"} {
		if want[vmm] == 0 {
			continue
		}
		var parts []string
		for _, k := range soakKinds {
			total[vmm] += counts[vmm][k]
			if c := counts[vmm][k]; c > 0 || k == "ok" {
				parts = append(parts, fmt.Sprintf("%s %d", k, c))
			}
		}
		t.Logf("soak %s: %d boots: %s; ok boots took %s", vmm, total[vmm], strings.Join(parts, ", "), spread(secs[vmm]))
		if total[vmm] != want[vmm] {
			t.Errorf("%s: %d boots reported, want %d", vmm, total[vmm], want[vmm])
		}
	}
	gf, qf := total["govm"]-counts["govm"]["ok"], total["qemu"]-counts["qemu"]["ok"]
	p := fisherGreater(gf, total["govm"]-gf, qf, total["qemu"]-qf)
	t.Logf("soak (%d hosts side by side, pinned=%s): govm failed %d of %d, QEMU %d of %d; one-sided Fisher p=%.3f that govm fails no more often",
		hosts, envOr("GOVM_SOAK_PIN", "0"), gf, total["govm"], qf, total["qemu"], p)
	if p < 0.05 {
		t.Errorf("govm fails more often than QEMU in the same L1s beyond chance (p=%.3f)", p)
	}
	if nv > 0 {
		vf, vt := total["variant"]-counts["variant"]["ok"], total["variant"]
		t.Logf("soak: govm variant (env %q, flags %q) failed %d of %d; one-sided Fisher p=%.3f that it fails no more often than govm, p=%.3f than QEMU",
			venv, vflags, vf, vt, fisherGreater(vf, vt-vf, gf, total["govm"]-gf), fisherGreater(vf, vt-vf, qf, total["qemu"]-qf))
	}
}

// spread is "lo-hi s (median m)" of boot times, or "-" for none.
func spread(s []int) string {
	if len(s) == 0 {
		return "-"
	}
	sort.Ints(s)
	return fmt.Sprintf("%d-%d s (median %d)", s[0], s[len(s)-1], s[len(s)/2])
}

// fisherGreater is the one-sided p-value of Fisher's exact test that the
// first group's failure rate (a failures, b successes) is no higher than
// the second's (c, d): the probability, with the margins fixed, of a
// table at least as extreme toward the first group failing more.
func fisherGreater(a, b, c, d int) float64 {
	n := a + b + c + d
	fail, first := a+c, a+b
	p := 0.0
	for x := a; x <= min(fail, first); x++ {
		p += math.Exp(logChoose(first, x) + logChoose(n-first, fail-x) - logChoose(n, fail))
	}
	return min(p, 1)
}

// logChoose is log(n choose k).
func logChoose(n, k int) float64 {
	if k < 0 || k > n {
		return math.Inf(-1)
	}
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}
