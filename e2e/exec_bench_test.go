package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govm/govm/execimg"
)

// Sizes of what BenchmarkExec reads through each VMM's share.
const (
	// execTreeFiles are the files of the tree walked, 100 per directory.
	// QEMU's 9p walks 300 in about a second nested but stalls for good
	// somewhere below 1000 (on L1's rootfs and on a tmpfs alike).
	execTreeFiles = 300
	execBigBytes  = 256 << 20 // the file read
	execRounds    = 3
)

// qemu9pInit is PID 1 of QEMU's guest in BenchmarkExec: what vmtest and
// vimto do with QEMU, reduced to its I/O path. It loads the 9p modules,
// mounts the host's / over virtio-9p read-only (vmtest's options:
// cache=mmap, 1 MiB msize; QEMU's multidevs=remap, without which the
// mounts under / collide in inode numbers and find never ends), a tmpfs
// for the command's files, and runs the command the host left in
// /case/qemu-cmd in the host's root.
const qemu9pInit = `#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /mnt
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in $($B cat /modules); do $B insmod $m || echo "GOVM-QEMU9P insmod $m failed"; done
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=mmap,ro hostroot /mnt || echo GOVM-QEMU9P mount failed
$B mount -t tmpfs tmp /mnt/tmp
$B mount -t proc proc /mnt/proc
$B mount -t devtmpfs dev /mnt/dev
$B chroot /mnt /bin/sh -c "cd /tmp && $($B cat /mnt/case/qemu-cmd)"
echo "GOVM-QEMU9P rc=$?"
$B poweroff -f
`

// execTimes matches govm-host time reports: VMM-what.
var execTimes = regexp.MustCompile(`GOVM-HOST-TIME (govm|qemu)-(true|walk|read)(?:\.log)? ms=([0-9.]+) exit=(\d+)`)

// BenchmarkExec runs a command on the host's files in a fresh VM with
// govm exec and with QEMU over 9p (-virtfs), which is what vmtest and
// vimto use, side by side in one L1 per round, with the same kernel
// (Debian's generic 6.1: the cloud kernel has no 9p): the wall time of
// `exec -- sh -c true` (boot to power-off), and inside the guest the time
// to walk a tree of 300 files (find) and to read a 256 MiB file (dd).
// It reports each figure's median, min and max, and govm's over QEMU's
// round by round (paired-qemu.exec-*: below 1 is faster).
func BenchmarkExec(b *testing.B) {
	r := testRunner(b)
	dir := filepath.Join(r.Assets.Dir, "kernel-generic")
	relb, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		b.Fatalf("%v (make assets fetches the generic kernel)", err)
	}
	rel := strings.TrimSpace(string(relb))
	mods := filepath.Join(dir, "lib-modules", rel)
	kernel, err := os.ReadFile(filepath.Join(dir, "bzImage"))
	if err != nil {
		b.Fatal(err)
	}
	qemuInitrd, err := qemu9pInitrd(mods)
	if err != nil {
		b.Fatal(err)
	}
	files := map[string][]byte{"bzImage-generic": kernel, "qemu9p.cpio": qemuInitrd}
	for i := range execTreeFiles {
		files[fmt.Sprintf("tree/d%03d/f%05d", i/100, i)] = nil
	}
	root, err := installedModules(mods, rel)
	if err != nil {
		b.Fatal(err)
	}
	modFlag := ""
	if r.Mode == Direct {
		modFlag = "--modules " + mods
	}
	// Each run is timed from L1 (name-true: the whole VM, boot to
	// power-off) and, for walk and read, inside the guest by govm-host
	// time, whose report the VMM passes on (stdout, or QEMU's console).
	run := func(vmm, name, cmd string) string {
		outer := vmm + "-" + name
		if name != "true" {
			outer = vmm + "-boot-" + name
			cmd = "govm-host time " + vmm + "-" + name + " " + cmd
		}
		if vmm == "govm" {
			return "govm-host time " + outer + " govm exec --kernel $D/bzImage-generic " + modFlag + " --timeout 300s -- " + cmd + "\n" +
				"grep -a GOVM-HOST-TIME " + outer + ".log\n"
		}
		return "echo \"" + cmd + "\" > $D/qemu-cmd\n" +
			"govm-host time " + outer + " timeout -s KILL 300 qemu-system-x86_64 -accel kvm -cpu " + qemuCPU +
			" -m 512M -smp 1 -nodefaults -no-user-config -display none -serial stdio -no-reboot -L /usr/share/qemu" +
			" -kernel $D/bzImage-generic -initrd $D/qemu9p.cpio -append 'console=ttyS0 panic=-1 reboot=k quiet'" +
			" -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap\n" +
			"grep -a 'GOVM-HOST-TIME\\|GOVM-QEMU9P' " + outer + ".log\n"
	}
	var script strings.Builder
	script.WriteString("export PATH=$PATH:/usr/bin\ncd /tmp\ndd if=/dev/zero of=$D/big bs=1M count=" + strconv.Itoa(execBigBytes>>20) + " 2>/dev/null\n")
	for _, vmm := range []string{"govm", "qemu"} {
		script.WriteString(run(vmm, "true", "sh -c true"))
		// find and dd through sh: busybox runs them as applets, which
		// L1's PATH does not hold.
		script.WriteString(run(vmm, "walk", "sh -c 'find $D/tree >/dev/null'"))
		script.WriteString(run(vmm, "read", "sh -c 'dd if=$D/big of=/dev/null bs=1M'"))
	}
	files["bench.sh"] = []byte(script.String())
	for range b.N {
		var rounds []map[string]float64
		for round := 1; round <= execRounds; round++ {
			res, err := r.Run(context.Background(), Case{
				Program: "sh", Args: []string{"{dir}/bench.sh"}, Env: []string{"D={dir}"}, Timeout: 30 * time.Minute, NeedPeers: true,
				Files: files, RootFiles: root,
			})
			if errors.Is(err, errEmulatorFault) {
				benchNote(b, "round %d: spoiled by the emulator: %v", round, err)
				continue
			}
			if err != nil {
				b.Fatal(err)
			}
			// A run that failed gives no figure and is noted; the
			// round's other pairs still count.
			figs := map[string]float64{}
			for _, m := range execTimes.FindAllStringSubmatch(res.Output, -1) {
				if m[4] != "0" {
					benchNote(b, "round %d: %s-%s exited %s", round, m[1], m[2], m[4])
					continue
				}
				ms, _ := strconv.ParseFloat(m[3], 64)
				figs[m[1]+".exec-"+m[2]+"-ms"] = ms
			}
			for _, who := range []string{"govm", "qemu"} {
				for _, what := range []string{"true", "walk", "read"} {
					if _, ok := figs[who+".exec-"+what+"-ms"]; !ok {
						benchNote(b, "round %d: no %s figure from %s", round, what, who)
					}
				}
			}
			rounds = append(rounds, figs)
		}
		reportRounds(b, rounds)
	}
}

// qemu9pInitrd is QEMU's guest initramfs: busybox, qemu9pInit and the 9p
// modules resolved from mods.
func qemu9pInitrd(mods string) ([]byte, error) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	ms, err := execimg.Resolve(mods, []string{"virtio_pci", "9pnet_virtio", "9p"})
	if err != nil {
		return nil, err
	}
	files := []cpioFile{{Name: "init", Mode: 0o755, Data: []byte(qemu9pInit)}, {Name: "bin/busybox", Mode: 0o755, Data: bin}}
	var list strings.Builder
	for i, m := range ms {
		data, err := os.ReadFile(m.Path)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("m/%02d-%s.ko", i, m.Name)
		files = append(files, cpioFile{Name: name, Mode: 0o644, Data: data})
		fmt.Fprintf(&list, "/%s\n", name)
	}
	files = append(files, cpioFile{Name: "modules", Mode: 0o644, Data: []byte(list.String())})
	var buf bytes.Buffer
	if err := writeCpio(&buf, files); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
