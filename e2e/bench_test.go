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
var benchLine = regexp.MustCompile(`(GOVM-(?:HOST-)?BENCH) seq-write-MBps=([0-9.]+) seq-read-MBps=([0-9.]+) rand-4k-read-IOPS=([0-9.]+)`)

// BenchmarkVirtioBlk measures a raw virtio disk from inside the guest
// (O_DIRECT sequential 1 MiB writes and reads, 4 KiB random reads) and the
// same image file from the host that runs govm (inside L1 when nested),
// with the same code, and reports both and their ratios (guest/host; 1
// means the disk costs the guest nothing).
func BenchmarkVirtioBlk(b *testing.B) {
	r := testRunner(b)
	for range b.N {
		res, err := r.Run(context.Background(), Case{
			Args: []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M",
				"--disk", "{dir}/raw.img", "--append", "govm.action=diskbench", "--timeout", "4m"},
			Timeout: 6 * time.Minute,
			Before:  "dd if=/dev/zero of={dir}/raw.img bs=1M count=128 2>/dev/null",
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
