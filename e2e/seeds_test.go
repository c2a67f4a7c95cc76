package e2e

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// seedsScript runs two guests with GOVM_DEBUG_SEEDS set: the agent's
// soak (its disks and a NIC on a TAP: virtio-blk and virtio-net TX) and a
// govm exec that reads and writes its shared working directory and talks
// through the console's ports (virtio-fs and virtio-console control).
// Then it prints each seed recorded, base64 on one line.
const seedsScript = `export PATH=$PATH:/usr/bin
K=$1 INITRD=$2
S=$D/seeds
printf '#!/bin/sh\nip addr add 10.0.9.1/24 dev "$1" && ip link set "$1" up\n' >$D/ifup && chmod +x $D/ifup
dd if=/dev/zero of=$D/raw.img bs=1M count=16 2>/dev/null
dd if=/dev/zero of=$D/ro.img bs=1M count=2 2>/dev/null
GOVM_DEBUG_SEEDS=$S govm run --kernel $K --initrd $INITRD --mem 512M \
	--disk $D/raw.img --disk $D/ro.img,ro --net tap=govmseed0,mac=52:54:00:12:34:51,host-ip=10.0.9.1/24 \
	--append govm.net=52:54:00:12:34:51,10.0.9.15/24,10.0.9.1 --append govm.action=soak --timeout 150s </dev/null >$D/run.txt 2>&1
echo "SEEDS-RUN rc=$?"
mkdir -p $D/work/sub && echo hello > $D/work/sub/file && cd $D/work
GOVM_DEBUG_SEEDS=$S govm exec --kernel $K --timeout 150s $MODFLAGS -- sh -c 'ls -la sub; cat sub/file; mkdir made; echo x > made/y; mv made/y made/z; ln -s z made/l; rm made/z made/l; rmdir made; stat sub/file' >$D/exec.txt 2>&1
echo "SEEDS-EXEC rc=$?"
for f in $S/*/*; do
	[ -f "$f" ] || continue
	t=${f%/*}; t=${t##*/}
	echo "SEED $t ${f##*/} $(base64 -w 0 < $f)"
done
`

var seedLine = regexp.MustCompile(`(?m)^SEED (Fuzz\w+) (real-[0-9a-f]+) ([A-Za-z0-9+/=]+)$`)

// TestRecordSeeds (make fuzz-seeds; skipped unless $GOVM_RECORD_SEEDS is
// set) records real drivers' requests as fuzz seeds (virtio.SeedRecorder)
// and writes them to the virtio package's testdata/fuzz, where go test
// runs them and make fuzz starts from them.
func TestRecordSeeds(t *testing.T) {
	if os.Getenv("GOVM_RECORD_SEEDS") == "" {
		t.Skip("set GOVM_RECORD_SEEDS=1 (make fuzz-seeds) to record seeds from real drivers")
	}
	r := testRunner(t)
	c := Case{
		Program: "sh", Args: []string{"{dir}/seeds.sh", "{bzImage}", "{initrd}"}, Timeout: 20 * time.Minute,
		Files: map[string][]byte{"seeds.sh": []byte(seedsScript)},
		Env:   []string{"D={dir}"},
	}
	withGuestModules(t, r, &c)
	res := runCase(t, r, c, 0)
	for _, want := range []string{"SEEDS-RUN rc=0", "SEEDS-EXEC rc=0"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("want %q; output:\n%s", want, tail(res.Output, 40))
		}
	}
	counts := map[string]int{}
	for _, m := range seedLine.FindAllStringSubmatch(res.Output, -1) {
		b, err := base64.StdEncoding.DecodeString(m[3])
		if err != nil || !strings.HasPrefix(string(b), "go test fuzz v1\n") {
			t.Errorf("seed %s/%s: not a corpus file (%v)", m[1], m[2], err)
			continue
		}
		dir := filepath.Join("..", "virtio", "testdata", "fuzz", m[1])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, m[2]), b, 0o644); err != nil {
			t.Fatal(err)
		}
		counts[m[1]]++
	}
	t.Logf("seeds recorded from real drivers: %v", counts)
	for _, target := range []string{"FuzzBlkRequest", "FuzzNetTx", "FuzzFSRequest", "FuzzConsoleControl"} {
		if counts[target] == 0 {
			t.Errorf("no seed recorded for %s", target)
		}
	}
}
