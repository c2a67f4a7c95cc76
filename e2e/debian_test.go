package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// l1VirtioModules load in this order into L1's kernel so it sees
// Case.L1Disk (Debian's cloud kernel has virtio as modules).
var l1VirtioModules = []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk"}

// debianLine matches the report of the Debian guest's govm-check unit
// (scripts/debian-image.sh).
var debianLine = regexp.MustCompile(`GOVM-DEBIAN (.*)`)

// TestDebianGuest boots Debian bookworm with systemd as a distribution
// ships it: its own kernel and initramfs-tools initrd, root on a
// virtio-blk disk, built from Debian's packages by debootstrap
// (scripts/debian-image.sh, cached in build/debian by the script's
// content). The boot must settle as "running" with no failed unit, the
// CMOS RTC must be the guest's rtc0, and systemctl poweroff must end govm
// with 0.
func TestDebianGuest(t *testing.T) {
	r := testRunner(t)
	if os.Geteuid() != 0 {
		t.Skip("building the Debian image needs root (debootstrap)")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(r.Assets.Dir, "debian")
	start := time.Now()
	if b, err := exec.Command("bash", filepath.Join(root, "scripts/debian-image.sh"), out).CombinedOutput(); err != nil {
		t.Fatalf("building the Debian image: %v\n%s", err, b)
	}
	t.Logf("Debian image ready in %.0f s", time.Since(start).Seconds())
	c := Case{
		Args: []string{"--mem", "1G", "--cpus", "2", "--append", "root=/dev/vda rw printk.devkmsg=on", "--timeout", "8m"},
		// Debian's own boot is noisy on the console; the unit's report is
		// what counts.
		Timeout: 15 * time.Minute,
	}
	if r.Mode == Direct {
		c.Args = append([]string{"--kernel", filepath.Join(out, "vmlinuz"), "--initrd", filepath.Join(out, "initrd.img"),
			"--disk", filepath.Join(out, "root.img")}, c.Args...)
	} else {
		// The image reaches L1 as its own read-only virtio disk and is
		// copied to L1's memory for govm; kernel and initrd are files.
		c.L1Disk = filepath.Join(out, "root.img")
		c.Files = map[string][]byte{}
		for _, f := range []string{"vmlinuz", "initrd.img"} {
			if c.Files[f], err = os.ReadFile(filepath.Join(out, f)); err != nil {
				t.Fatal(err)
			}
		}
		mods := filepath.Join(r.Assets.Dir, "kernel/guest-modules")
		var load strings.Builder
		for _, m := range l1VirtioModules {
			if c.Files["mod-"+m+".ko"], err = os.ReadFile(filepath.Join(mods, m+".ko")); err != nil {
				t.Fatal(err)
			}
			load.WriteString("insmod {dir}/mod-" + m + ".ko 2>&1 | grep -v \"File exists\"\n")
		}
		c.Before = load.String() +
			"for i in $(seq 50); do [ -b /dev/vda ] && break; sleep 0.2; done\n" +
			"dd if=/dev/vda of={dir}/root.img bs=4M 2>/dev/null || { echo GOVM-DEBIAN-ERROR no /dev/vda in L1; cat /proc/partitions; ls /sys/bus/pci/devices; }\n"
		c.Args = append([]string{"--kernel", "{dir}/vmlinuz", "--initrd", "{dir}/initrd.img", "--disk", "{dir}/root.img"}, c.Args...)
	}
	res := runCase(t, r, c, 0)
	var report []string
	for _, m := range debianLine.FindAllStringSubmatch(res.Output, -1) {
		report = append(report, m[1])
	}
	t.Logf("the guest's report:\n  %s", strings.Join(report, "\n  "))
	if !strings.Contains(res.Output, "GOVM-DEBIAN state=running") {
		t.Errorf("systemctl is-system-running did not say running")
	}
	for _, l := range report {
		if strings.HasPrefix(l, "failed: ") {
			t.Errorf("a unit failed: %s", strings.TrimPrefix(l, "failed: "))
		}
	}
	if !strings.Contains(res.Output, "GOVM-DEBIAN rtc=rtc_cmos") {
		t.Errorf("the guest's rtc0 is not the CMOS RTC")
	}
	if strings.Contains(res.Output, "probe of rtc_cmos failed") {
		t.Errorf("rtc_cmos failed to probe")
	}
	if t.Failed() {
		t.Logf("console tail:\n%s", tail(res.Output, 60))
	}
}
