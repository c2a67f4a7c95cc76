package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestVirtioBlk boots a guest with a raw read-write disk, a read-only
// disk and an ext4 disk the host made with mkfs.ext4. The guest's stock
// virtio_pci and virtio_blk drivers must find all three with the right
// size, serial and read-only flag. On the raw disk it reads a marker the
// host wrote, writes a pattern at the first sector, 1 MiB and the last
// sector, and one from each of its two vCPUs at 2 MiB (each through its
// own request queue, which must interrupt on its own vector; the
// read-only disk, given queues=1, has one), and flushes; the host then
// finds those bytes in the file. Writes to the read-only disk fail and
// leave its file unchanged. On the ext4
// disk it mounts the file system, hashes the host's file, writes a file of
// its own, syncs and unmounts; the host reads that file back with debugfs
// and e2fsck finds the file system clean.
func TestVirtioBlk(t *testing.T) {
	r := testRunner(t)
	const mib = 1 << 20
	before := `dd if=/dev/zero of={dir}/raw.img bs=1M count=16 2>/dev/null
printf 'HOST-MARKER-RAW' | dd of={dir}/raw.img bs=512 seek=1 conv=notrunc 2>/dev/null
dd if=/dev/zero of={dir}/ro.img bs=1M count=2 2>/dev/null
printf 'HOST-MARKER-RO' | dd of={dir}/ro.img bs=512 seek=1 conv=notrunc 2>/dev/null
sha256sum {dir}/ro.img > {dir}/ro.sum
# Full paths: busybox's shell would run its own mke2fs applet instead.
mkdir -p {dir}/ext4src
dd if=/dev/urandom of={dir}/ext4src/host.bin bs=64K count=48 2>/dev/null
echo "GOVM-HOST-EXT4-SUM $(sha256sum {dir}/ext4src/host.bin | cut -d' ' -f1)"
/sbin/mke2fs -q -F -t ext4 -d {dir}/ext4src {dir}/ext4.img 32M`
	after := `for off in 0 2048 4096 4097 32767; do printf 'GOVM-HOST-SECTOR %s ' $off; dd if={dir}/raw.img bs=512 skip=$off count=1 2>/dev/null | head -c 40 | tr '\0' ' '; echo; done
sha256sum -c {dir}/ro.sum >/dev/null 2>&1 && echo GOVM-HOST-RO-UNCHANGED
echo "GOVM-HOST-DEBUGFS $(/sbin/debugfs -R 'cat /guest.txt' {dir}/ext4.img 2>/dev/null)"
/sbin/e2fsck -fn {dir}/ext4.img >/dev/null 2>&1; echo "GOVM-HOST-FSCK=$?"`
	res := runCase(t, r, Case{
		Args: []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M", "--cpus", "2",
			"--disk", "{dir}/raw.img,serial=govm-raw", "--disk", "{dir}/ro.img,ro,queues=1",
			"--disk", "{dir}/ext4.img,serial=govm-ext4",
			"--append", "govm.action=disktest"},
		Before: before,
		After:  after,
	}, 0)
	out := res.Output
	for _, want := range []string{
		"GOVM-DISK vda sectors=32768 ro=0 serial=govm-raw",
		"GOVM-DISK vdb sectors=4096 ro=1 serial=ro.img",
		"GOVM-DISK-READ vda HOST-MARKER-RAW",
		"GOVM-DISK-READ vdb HOST-MARKER-RO",
		"GOVM-DISK-WROTE vda ok=true",
		"GOVM-DISK-RO-WRITE vdb refused=true",
		"GOVM-HOST-RO-UNCHANGED",
		"GOVM-DISK vdc sectors=65536 ro=0 serial=govm-ext4",
		"GOVM-EXT4-WROTE guest.txt ok=true",
		"GOVM-HOST-DEBUGFS written by the guest on vdc",
		"GOVM-HOST-FSCK=0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, sector := range []int64{0, mib / 512, 2 * mib / 512, 2*mib/512 + 1, 32767} {
		want := fmt.Sprintf("GOVM-HOST-SECTOR %d GOVM-PATTERN vda %d", sector, sector*512)
		if !strings.Contains(out, want) {
			t.Errorf("host file lacks the guest's pattern: %q", want)
		}
	}
	// Two vCPUs, two request queues: the write from each CPU went through
	// its own, which interrupted on its own vector.
	if m := regexp.MustCompile(`GOVM-DISK-QUEUES vda queues=(\d+) req\.0=(\d+) req\.1=(\d+)`).FindStringSubmatch(out); m == nil {
		t.Errorf("no two-queue report for vda")
	} else if m[1] != "2" || m[2] == "0" || m[3] == "0" {
		t.Errorf("vda: %s queues, interrupts per queue %s and %s; want 2, both used", m[1], m[2], m[3])
	}
	if !regexp.MustCompile(`GOVM-DISK-QUEUES vdb queues=1\b`).MatchString(out) {
		t.Errorf("vdb, given queues=1, does not show one queue")
	}
	// The guest read the host's file whole: the same SHA-256.
	hostSum := regexp.MustCompile(`GOVM-HOST-EXT4-SUM ([0-9a-f]{64})`).FindStringSubmatch(out)
	guestSum := regexp.MustCompile(`GOVM-EXT4-READ host.bin bytes=3145728 sha256=([0-9a-f]{64})`).FindStringSubmatch(out)
	if hostSum == nil || guestSum == nil || hostSum[1] != guestSum[1] {
		t.Errorf("ext4 file: host sha256 %v, guest read %v; want both, equal", hostSum, guestSum)
	}
	if t.Failed() {
		t.Logf("output tail:\n%s", tail(out, 60))
	}
}

// TestDiskSyncSurvivesKill: what the guest wrote and fsynced is in the
// disk file even when govm is killed with SIGKILL right after, with no
// chance to flush anything of its own.
func TestDiskSyncSurvivesKill(t *testing.T) {
	r := testRunner(t)
	res := runCase(t, r, Case{
		Args: []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M",
			"--disk", "{dir}/raw.img", "--append", "govm.action=synctest"},
		Before:    "dd if=/dev/zero of={dir}/raw.img bs=1M count=16 2>/dev/null",
		KillAfter: "GOVM-SYNCED vda",
		After:     `for off in 0 2048 32767; do printf 'GOVM-HOST-SECTOR %s ' $off; dd if={dir}/raw.img bs=512 skip=$off count=1 2>/dev/null | head -c 40 | tr '\0' ' '; echo; done`,
	}, 137)
	for _, sector := range []int64{0, 2048, 32767} {
		want := fmt.Sprintf("GOVM-HOST-SECTOR %d GOVM-PATTERN vda %d", sector, sector*512)
		if !strings.Contains(res.Output, want) {
			t.Errorf("after SIGKILL the disk file lacks the synced pattern: %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output tail:\n%s", tail(res.Output, 40))
	}
}

// TestVirtioBlkINTx: a guest told not to use MSI (pci=nomsi) drives the
// disks through INTx, the legacy interrupt the ACPI _PRT routes to an
// I/O APIC input: the stock virtio_pci driver falls back to it, reads and
// writes a raw disk, and the host finds the guest's patterns.
func TestVirtioBlkINTx(t *testing.T) {
	r := testRunner(t)
	res := runCase(t, r, Case{
		Args: []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M",
			"--disk", "{dir}/raw.img,serial=govm-raw", "--disk", "{dir}/ro.img,ro",
			"--append", "pci=nomsi govm.action=disktest"},
		Before: `dd if=/dev/zero of={dir}/raw.img bs=1M count=16 2>/dev/null
printf 'HOST-MARKER-RAW' | dd of={dir}/raw.img bs=512 seek=1 conv=notrunc 2>/dev/null
dd if=/dev/zero of={dir}/ro.img bs=1M count=2 2>/dev/null`,
		After: `for off in 0 2048 32767; do printf 'GOVM-HOST-SECTOR %s ' $off; dd if={dir}/raw.img bs=512 skip=$off count=1 2>/dev/null | head -c 40 | tr '\0' ' '; echo; done`,
	}, 0)
	out := res.Output
	for _, want := range []string{
		"GOVM-DISK-READ vda HOST-MARKER-RAW",
		"GOVM-DISK-WROTE vda ok=true",
		"GOVM-DISK-RO-WRITE vdb refused=true",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, sector := range []int64{0, 2048, 32767} {
		want := fmt.Sprintf("GOVM-HOST-SECTOR %d GOVM-PATTERN vda %d", sector, sector*512)
		if !strings.Contains(out, want) {
			t.Errorf("host file lacks the guest's pattern: %q", want)
		}
	}
	// Both devices on I/O APIC lines 16 and 17 (slots 1 and 2), level-
	// triggered, with interrupts counted; none through MSI-X.
	// /proc/interrupts: "IRQ: counts... IO-APIC PIN-fasteoi NAME".
	irqs := regexp.MustCompile(`GOVM-IRQ \d+: ([0-9 ]+) IO-APIC (1[67])-fasteoi (virtio\d)`).FindAllStringSubmatch(out, -1)
	if len(irqs) != 2 {
		t.Errorf("want two virtio INTx lines on IO-APIC 16 and 17, got %q", irqs)
	}
	for _, m := range irqs {
		n := 0
		for _, f := range strings.Fields(m[1]) {
			v, _ := strconv.Atoi(f)
			n += v
		}
		if n == 0 {
			t.Errorf("%s on GSI %s took no interrupts", m[3], m[2])
		}
		t.Logf("%s: GSI %s, %d interrupts", m[3], m[2], n)
	}
	if strings.Contains(out, "PCI-MSIX") {
		t.Error("a virtio device used MSI-X despite pci=nomsi")
	}
	if t.Failed() {
		t.Logf("output tail:\n%s", tail(out, 60))
	}
}
