package e2e

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// benchLine matches the figures govm-agent says for one side.
var benchLine = regexp.MustCompile(`(GOVM-(?:HOST-)?BENCH) seq-write-MBps=([0-9.]+) seq-read-MBps=([0-9.]+) rand-4k-read-IOPS=([0-9.]+) buffered=(true|false)`)

// BenchmarkVirtioBlk measures a raw virtio disk from inside the guest
// (O_DIRECT sequential 1 MiB writes and reads, 4 KiB random reads) and the
// same image file from the host that runs govm (inside L1 when nested),
// with the same code, and reports both and their ratios (guest/host; 1
// means the disk costs the guest nothing). Nested, the image lives on
// L1's tmpfs, so the host side reads memory through the page cache: the
// ratio then says what the whole virtual path costs.
func BenchmarkVirtioBlk(b *testing.B) {
	r := testRunner(b)
	for range b.N {
		res, err := r.Run(context.Background(), Case{
			Args: []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M",
				"--disk", "{dir}/raw.img", "--append", "govm.action=diskbench", "--timeout", "4m"},
			Timeout: 6 * time.Minute,
			Before:  "dd if=/dev/zero of={dir}/raw.img bs=1M count=64 2>/dev/null",
			After:   "govm-agent bench {dir}/raw.img",
		})
		if errors.Is(err, errEmulatorFault) {
			b.Skipf("every attempt was spoiled by the emulator: %v", err)
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
		names := []string{"seq-write-MB/s", "seq-read-MB/s", "rand-4k-read-IOPS"}
		for i, n := range names {
			b.ReportMetric(guest[i], "guest-"+n)
			b.ReportMetric(host[i], "host-"+n)
			if host[i] > 0 {
				b.ReportMetric(guest[i]/host[i], "ratio-"+n)
			}
		}
	}
}

// timeLine matches a govm-agent time report.
var timeLine = regexp.MustCompile(`GOVM-HOST-TIME (govm|qemu)-\d+ ms=([0-9.]+) exit=(\d+)`)

// BenchmarkBootVsQEMU boots the same kernel, u-root initramfs and command
// line (1 vCPU, 512 MiB, the guest agent powering off at once) with govm
// and with QEMU (-accel kvm, its stock PC machine) on the same host (L1
// when nested), alternately, and reports each one's wall time from start
// to exit and the ratio govm/QEMU (below 1: govm is faster).
func BenchmarkBootVsQEMU(b *testing.B) {
	r := testRunner(b)
	const rounds = 2
	after := "export PATH=$PATH:/usr/bin\n" // L1 keeps QEMU there, off its PATH
	for i := 1; i <= rounds; i++ {
		n := strconv.Itoa(i)
		after += "govm-agent time /tmp/govm-" + n + " govm run --kernel {bzImage} --initrd {initrd} --mem 512M --cpus 1" +
			" --append govm.action=poweroff --timeout 3m\n"
		after += "govm-agent time /tmp/qemu-" + n + " timeout -s KILL 180 qemu-system-x86_64 -accel kvm -cpu host -m 512M -smp 1" +
			" -nodefaults -no-user-config -display none -serial file:/tmp/qemu-" + n + ".console -no-reboot -L /usr/share/qemu" +
			" -kernel {bzImage} -initrd {initrd} -append 'console=ttyS0 panic=-1 reboot=k govm.action=poweroff'\n"
		// A boot counts only if the guest got to power off (QEMU with
		// -no-reboot also exits 0 when the guest crashes).
		after += "grep -q 'GOVM-AGENT: powering off' /tmp/govm-" + n + ".log && echo GOVM-BOOTED govm-" + n + "\n"
		after += "grep -q 'GOVM-AGENT: powering off' /tmp/qemu-" + n + ".console && echo GOVM-BOOTED qemu-" + n + "\n"
	}
	// The consoles, so the harness sees an emulator fault in any of them.
	after += "cat /tmp/govm-*.log /tmp/qemu-*.console\n"
	for range b.N {
		res, err := r.Run(context.Background(), Case{
			Command:  "check",
			NeedPeers: true,
			Timeout:  12 * time.Minute,
			After:    after,
		})
		if errors.Is(err, errEmulatorFault) {
			b.Skipf("every attempt was spoiled by the emulator: %v", err)
		}
		if err != nil {
			b.Fatal(err)
		}
		sum := map[string]float64{}
		count := map[string]int{}
		for _, m := range timeLine.FindAllStringSubmatch(res.Output, -1) {
			if m[3] != "0" {
				b.Fatalf("%s exited %s; console tail:\n%s", m[1], m[3], tail(res.Output, 40))
			}
			ms, _ := strconv.ParseFloat(m[2], 64)
			sum[m[1]] += ms
			count[m[1]]++
		}
		if n := len(regexp.MustCompile(`GOVM-BOOTED (govm|qemu)-\d+`).FindAllString(res.Output, -1)); n != 2*rounds {
			b.Fatalf("%d of %d boots reached the guest's poweroff (%q); console tail:\n%s", n, 2*rounds,
				regexp.MustCompile(`GOVM-(HOST-TIME|BOOTED) .*`).FindAllString(res.Output, -1), tail(res.Output, 60))
		}
		if count["govm"] != rounds || count["qemu"] != rounds {
			b.Fatalf("timed %d govm and %d QEMU boots, want %d each; console tail:\n%s", count["govm"], count["qemu"], rounds, tail(res.Output, 40))
		}
		g, q := sum["govm"]/rounds, sum["qemu"]/rounds
		b.ReportMetric(g, "govm-boot-ms")
		b.ReportMetric(q, "qemu-boot-ms")
		b.ReportMetric(g/q, "govm/qemu")
	}
}
