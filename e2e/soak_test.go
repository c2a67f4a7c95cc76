package e2e

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// soakScript boots {n} guests one after another, each with a raw disk, a
// read-only disk and a NIC on a TAP govm creates: the guest agent writes
// and checks the disks, pings the host and powers off. It prints one
// GOVM-SOAK line per boot (never the guest's console, see crashScript).
const soakScript = `i=0
while [ $i -lt {n} ]; do
	i=$((i + 1))
	dd if=/dev/zero of={dir}/raw.img bs=1M count=16 2>/dev/null
	dd if=/dev/zero of={dir}/ro.img bs=1M count=2 2>/dev/null
	start=$(date +%s)
	govm run --kernel {bzImage} --initrd {initrd} --mem 256M --cpus {cpus} \
		--disk {dir}/raw.img --disk {dir}/ro.img,ro \
		--net tap=govmsoak0,mac=52:54:00:12:34:51,host-ip=10.0.9.1/24 \
		--append govm.net=52:54:00:12:34:51,10.0.9.15/24,10.0.9.1 \
		--append govm.action=soak --timeout 120s </dev/null >{dir}/boot.txt 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	ok=0
	grep -q 'GOVM-DISK-WROTE vda ok=true' {dir}/boot.txt && grep -q 'GOVM-DISK-RO-WRITE vdb refused=true' {dir}/boot.txt \
		&& grep -q 'host=10.0.9.1 ok=true' {dir}/boot.txt && grep -q GOVM-SOAK-DONE {dir}/boot.txt && ok=1
	agent=0; grep -q GOVM-AGENT-START {dir}/boot.txt && agent=1
	fault=0; grep -q 'stack guard page was hit' {dir}/boot.txt && fault=1
	deadlock=0; grep -q ' if=0 runnable;.* isr 0x[0-9a-f].*f3 90 <' {dir}/boot.txt && deadlock=1
	echo "GOVM-SOAK $i rc=$rc ok=$ok agent=$agent fault=$fault deadlock=$deadlock secs=$secs"
	[ $ok -eq 1 ] || grep -E '^govm:|GOVM-(DISK|NET)-ERROR' {dir}/boot.txt | head -n 5 | sed 's/^/GOVM-SOAK-DETAIL /'
done`

var soakLine = regexp.MustCompile(`GOVM-SOAK (\d+) rc=(\d+) ok=(\d) agent=(\d) fault=(\d) deadlock=(\d) secs=(\d+)`)

// TestSoak (make soak; skipped unless $GOVM_SOAK is set): $GOVM_SOAK
// boots with disks and a NIC, each checked, consecutive on each of one
// host per CPU (nested: L1 guests side by side). It reports how many
// passed, how many the nested emulator spoiled (its fault signature, or a
// guest that died before its agent started) and how many failed; any
// failure fails the test.
func TestSoak(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GOVM_SOAK"))
	if n <= 0 {
		t.Skip("set GOVM_SOAK=N (make soak) to run N consecutive boots")
	}
	r := testRunner(t)
	if r.Mode == Direct && os.Geteuid() != 0 {
		t.Skip("creating TAP devices needs root (CAP_NET_ADMIN) in direct mode")
	}
	cpus := envOr("GOVM_SOAK_CPUS", "1")
	hosts := max(1, min(cap(r.Slots), n))
	if r.Mode == Direct {
		hosts = 1 // one TAP name, on one host
	}
	outs := onHosts(t, r, hosts, func(h int) Case {
		boots := n / hosts
		if h < n%hosts {
			boots++
		}
		script := strings.NewReplacer("{n}", strconv.Itoa(boots), "{cpus}", cpus).Replace(soakScript)
		return Case{Command: "version", After: script, Timeout: time.Duration(boots) * 3 * time.Minute}
	})
	out := strings.Join(outs, "\n")
	var passed, spoiled, failed int
	var secs []int
	for _, m := range soakLine.FindAllStringSubmatch(out, -1) {
		rc, _ := strconv.Atoi(m[2])
		s, _ := strconv.Atoi(m[7])
		switch {
		case m[3] == "1" && rc == 0:
			passed++
			secs = append(secs, s)
		case m[5] == "1" || m[6] == "1" || (m[4] == "0" && (rc == 33 || rc == 34 || rc == 35)):
			spoiled++
			t.Logf("boot %s: spoiled by the emulator (govm exit %d, fault=%s deadlock=%s agent=%s)", m[1], rc, m[5], m[6], m[4])
		default:
			failed++
			t.Errorf("boot %s: failed (govm exit %d)", m[1], rc)
		}
	}
	for _, l := range regexp.MustCompile(`GOVM-SOAK-DETAIL .*`).FindAllString(out, -1) {
		t.Log(l)
	}
	lo, hi := 0, 0
	for i, s := range secs {
		if i == 0 || s < lo {
			lo = s
		}
		if s > hi {
			hi = s
		}
	}
	t.Logf("soak (%s mode, %d hosts side by side, %s vCPU): %d boots: %d passed (%d-%d s each), %d spoiled by the emulator, %d failed",
		r.Mode, hosts, cpus, passed+spoiled+failed, passed, lo, hi, spoiled, failed)
	if passed+spoiled+failed != n {
		t.Errorf("%d boots reported, want %d", passed+spoiled+failed, n)
	}
}
