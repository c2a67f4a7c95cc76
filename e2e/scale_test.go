package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// scaleMetrics is what TestScale reads of the file govm's --metrics
// writes (cmd/govm/run.go, metricsFile).
type scaleMetrics struct {
	BootTimeMS      float64 `json:"boot_time_ms"`
	PeakRSSKB       uint64  `json:"peak_rss_kb"`
	GuestResidentKB uint64  `json:"guest_resident_kb"`
	OverheadKB      int64   `json:"vmm_overhead_kb"`
	GoMappedKB      uint64  `json:"go_runtime_mapped_kb"`
}

var scaleMetricsLine = regexp.MustCompile(`GOVM-SCALE-METRICS (\{.*\})`)

// TestScale (make soak; skipped unless $GOVM_SCALE is set) boots the
// agent with 1, 2, 8 and 64 vCPUs at 512M, and with 512M, 4G and 16G at
// one vCPU and at 64, each to power-off, and checks every vCPU came
// online. It logs a table of boot time (govm's start to the agent's
// first instruction) and govm's own memory (its peak resident set less
// the guest RAM the guest touched), which should stay flat as vCPUs and
// RAM grow: a vCPU costs a thread and its kvm_run page, and guest RAM is
// reserved, not touched.
func TestScale(t *testing.T) {
	if os.Getenv("GOVM_SCALE") == "" {
		t.Skip("set GOVM_SCALE=1 (make soak) to boot the scale matrix")
	}
	r := testRunner(t)
	configs := []struct {
		cpus int
		mem  string
	}{
		{1, "512M"}, {2, "512M"}, {8, "512M"}, {64, "512M"},
		{1, "4G"}, {1, "16G"}, {64, "16G"},
	}
	type row struct {
		cpus int
		mem  string
		m    scaleMetrics
	}
	rows := make([]row, len(configs))
	t.Run("matrix", func(t *testing.T) {
		for i, c := range configs {
			t.Run(fmt.Sprintf("%d vCPUs %s", c.cpus, c.mem), func(t *testing.T) {
				t.Parallel()
				res := runCase(t, r, Case{
					Args: []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", c.mem,
						"--cpus", fmt.Sprint(c.cpus), "--metrics", "{dir}/metrics.json", "--timeout", "900s",
						"--append", "govm.action=poweroff"},
					Timeout: 20 * time.Minute,
					After:   `echo "GOVM-SCALE-METRICS $(tr -d '\n' < {dir}/metrics.json)"`,
				}, 0)
				if n := markerInt(t, res, "GOVM-CPUS"); n != int64(c.cpus) {
					t.Errorf("guest sees %d CPUs online, want %d", n, c.cpus)
				}
				m := scaleMetricsLine.FindStringSubmatch(res.Output)
				if m == nil {
					t.Fatalf("no metrics after the run; tail:\n%s", tail(res.Output, 20))
				}
				var sm scaleMetrics
				if err := json.Unmarshal([]byte(m[1]), &sm); err != nil {
					t.Fatalf("metrics: %v", err)
				}
				if sm.BootTimeMS <= 0 || sm.PeakRSSKB == 0 {
					t.Errorf("metrics lack boot time or peak RSS: %s", m[1])
				}
				rows[i] = row{c.cpus, c.mem, sm}
			})
		}
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%s mode\n| vCPUs | RAM | boot to agent | govm own memory (peak RSS - guest touched) | peak RSS | guest touched | Go runtime mapped |\n| --- | --- | --- | --- | --- | --- | --- |\n", r.Mode)
	for _, w := range rows {
		if w.m.PeakRSSKB == 0 {
			fmt.Fprintf(&b, "| %d | %s | - | - | - | - | - |\n", w.cpus, w.mem)
			continue
		}
		fmt.Fprintf(&b, "| %d | %s | %.2f s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB |\n", w.cpus, w.mem,
			w.m.BootTimeMS/1000, float64(w.m.OverheadKB)/1024, float64(w.m.PeakRSSKB)/1024,
			float64(w.m.GuestResidentKB)/1024, float64(w.m.GoMappedKB)/1024)
	}
	t.Logf("scale:\n%s", b.String())
}
