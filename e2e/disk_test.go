package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// TestVirtioBlk boots a guest with a raw read-write disk and a read-only
// disk. The guest's stock virtio_pci and virtio_blk drivers must find both
// with the right size, serial and read-only flag; it reads a marker the
// host wrote, writes a pattern at the first sector, 1 MiB and the last
// sector and flushes; the host then finds those bytes in the file. Writes
// to the read-only disk fail and leave its file unchanged.
func TestVirtioBlk(t *testing.T) {
	r := testRunner(t)
	const mib = 1 << 20
	before := `dd if=/dev/zero of={dir}/raw.img bs=1M count=16 2>/dev/null
printf 'HOST-MARKER-RAW' | dd of={dir}/raw.img bs=512 seek=1 conv=notrunc 2>/dev/null
dd if=/dev/zero of={dir}/ro.img bs=1M count=2 2>/dev/null
printf 'HOST-MARKER-RO' | dd of={dir}/ro.img bs=512 seek=1 conv=notrunc 2>/dev/null
sha256sum {dir}/ro.img > {dir}/ro.sum`
	after := `for off in 0 2048 32767; do printf 'GOVM-HOST-SECTOR %s ' $off; dd if={dir}/raw.img bs=512 skip=$off count=1 2>/dev/null | head -c 40 | tr '\0' ' '; echo; done
sha256sum -c {dir}/ro.sum >/dev/null 2>&1 && echo GOVM-HOST-RO-UNCHANGED`
	res := runCase(t, r, Case{
		Args: []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M",
			"--disk", "{dir}/raw.img,serial=govm-raw", "--disk", "{dir}/ro.img,ro",
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
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, sector := range []int64{0, mib / 512, 32767} {
		want := fmt.Sprintf("GOVM-HOST-SECTOR %d GOVM-PATTERN vda %d", sector, sector*512)
		if !strings.Contains(out, want) {
			t.Errorf("host file lacks the guest's pattern: %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output tail:\n%s", tail(out, 60))
	}
}
