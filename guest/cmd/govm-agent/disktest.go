package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/govm/govm/internal/agentkit"
	"golang.org/x/sys/unix"
)

// Disk test pattern: the host checks these bytes after the guest powers off.
const diskSector = 512

func diskPattern(disk string, off int64) []byte {
	b := make([]byte, diskSector)
	copy(b, fmt.Sprintf("GOVM-PATTERN %s %d", disk, off))
	return b
}

// diskTest reads the host's marker at sector 1 of every disk, then writes a
// pattern at the first sector, 1 MiB and the last sector and flushes (on a
// read-only disk the write must fail).
func diskTest() {
	disks, _ := filepath.Glob("/sys/block/vd*")
	for _, d := range disks {
		if strings.TrimSpace(readFile(d+"/serial")) == ext4Serial {
			ext4Test(filepath.Base(d))
		}
	}
	diskPatterns()
}

// diskPatterns reads the host marker and writes the patterns on every raw disk.
func diskPatterns() {
	disks, _ := filepath.Glob("/sys/block/vd*")
	for _, d := range disks {
		name := filepath.Base(d)
		if strings.TrimSpace(readFile(d+"/serial")) == ext4Serial {
			continue
		}
		sectors, _ := strconv.ParseInt(strings.TrimSpace(readFile(d+"/size")), 10, 64)
		ro := strings.TrimSpace(readFile(d+"/ro")) == "1"
		flag := os.O_RDWR
		if ro {
			flag = os.O_RDONLY
		}
		f, err := os.OpenFile("/dev/"+name, flag|unix.O_DIRECT, 0)
		if err != nil {
			say("GOVM-DISK-ERROR %s open: %v", name, err)
			continue
		}
		buf := alignedBuffer(diskSector)
		if _, err := f.ReadAt(buf, diskSector); err != nil {
			say("GOVM-DISK-ERROR %s read: %v", name, err)
		} else {
			say("GOVM-DISK-READ %s %s", name, strings.TrimRight(string(buf[:32]), "\x00"))
		}
		if ro {
			sayQueues(d, interruptCounts())
			w, err := os.OpenFile("/dev/"+name, os.O_WRONLY, 0)
			if err == nil {
				_, err = w.WriteAt(diskPattern(name, 0), 0)
				if err == nil {
					err = w.Sync()
				}
				w.Close()
			}
			say("GOVM-DISK-RO-WRITE %s refused=%v", name, err != nil)
			f.Close()
			continue
		}
		ok := true
		for _, off := range []int64{0, 1 << 20, (sectors - 1) * diskSector} {
			copy(buf, diskPattern(name, off))
			if _, err := f.WriteAt(buf, off); err != nil {
				say("GOVM-DISK-ERROR %s write at %d: %v", name, off, err)
				ok = false
			}
		}
		// One write from each CPU, at 2 MiB + 512 * CPU: each goes to
		// the request queue of the CPU that submits it.
		irqsBefore := interruptCounts()
		for cpu := range runtime.NumCPU() {
			off := int64(2<<20) + int64(cpu)*diskSector
			copy(buf, diskPattern(name, off))
			if err := onCPU(cpu, func() error { _, err := f.WriteAt(buf, off); return err }); err != nil {
				say("GOVM-DISK-ERROR %s write at %d from CPU %d: %v", name, off, cpu, err)
				ok = false
			}
		}
		sayQueues(d, irqsBefore)
		if err := f.Sync(); err != nil {
			say("GOVM-DISK-ERROR %s flush: %v", name, err)
			ok = false
		}
		f.Close()
		say("GOVM-DISK-WROTE %s ok=%v", name, ok)
	}
}

// onCPU runs fn on a thread bound to CPU cpu. The goroutine ends still
// locked to that thread, so the thread, bound, ends with it.
func onCPU(cpu int, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	return <-done
}

// sayQueues says how many request queues the disk at sysfs path d has
// (blk-mq's hardware contexts) and the interrupts each queue's vector
// took since before (the driver names them virtioN-req.Q):
//
//	GOVM-DISK-QUEUES vda queues=2 req.0=3 req.1=2
func sayQueues(d string, before map[string]uint64) {
	hctx, _ := filepath.Glob(d + "/mq/*")
	line := fmt.Sprintf("GOVM-DISK-QUEUES %s queues=%d", filepath.Base(d), len(hctx))
	dev, err := filepath.EvalSymlinks(d + "/device")
	if err == nil {
		after := interruptCounts()
		for q := range len(hctx) {
			vec := fmt.Sprintf("%s-req.%d", filepath.Base(dev), q)
			line += fmt.Sprintf(" req.%d=%d", q, after[vec]-before[vec])
		}
	}
	say("%s", line)
}

// alignedBuffer returns n bytes (at most a page) aligned for O_DIRECT.
func alignedBuffer(n int) []byte { return agentkit.AlignedBuffer(4096)[:n] }

// ext4Serial marks the disk holding an ext4 file system the host made:
// ext4Test mounts it instead of writing raw patterns on it.
const ext4Serial = "govm-ext4"

// The files ext4Test reads and writes, named from the file system's root.
const (
	ext4HostFile  = "host.bin"
	ext4GuestFile = "guest.txt"
	ext4Mount     = "/mnt/ext4"
)

// ext4Test mounts /dev/NAME as ext4, says the SHA-256 of the host's file,
// writes a file of its own, syncs and unmounts; the host reads that file
// back with debugfs and checks the file system with e2fsck.
func ext4Test(name string) {
	if err := os.MkdirAll(ext4Mount, 0o755); err != nil {
		say("GOVM-EXT4-ERROR mkdir: %v", err)
		return
	}
	if err := unix.Mount("/dev/"+name, ext4Mount, "ext4", 0, ""); err != nil {
		say("GOVM-EXT4-ERROR mount %s: %v", name, err)
		return
	}
	f, err := os.Open(filepath.Join(ext4Mount, ext4HostFile))
	if err == nil {
		h := sha256.New()
		var n int64
		n, err = io.Copy(h, f)
		f.Close()
		if err == nil {
			say("GOVM-EXT4-READ %s bytes=%d sha256=%s", ext4HostFile, n, hex.EncodeToString(h.Sum(nil)))
		}
	}
	if err != nil {
		say("GOVM-EXT4-ERROR read: %v", err)
	}
	content := fmt.Sprintf("written by the guest on %s\n", name)
	err = os.WriteFile(filepath.Join(ext4Mount, ext4GuestFile), []byte(content), 0o644)
	if err == nil {
		unix.Sync()
		err = unix.Unmount(ext4Mount, 0)
	}
	say("GOVM-EXT4-WROTE %s ok=%v err=%v", ext4GuestFile, err == nil, err)
}

// syncTest writes a pattern at the first sector, 1 MiB and the last
// sector of /dev/vda through the page cache, fsyncs (the driver sends a
// FLUSH), says GOVM-SYNCED and waits: the test then kills govm with
// SIGKILL and checks the host file holds every synced byte.
func syncTest() {
	sectors, _ := strconv.ParseInt(strings.TrimSpace(readFile("/sys/block/vda/size")), 10, 64)
	f, err := os.OpenFile("/dev/vda", os.O_RDWR, 0)
	if err != nil {
		say("GOVM-SYNC-ERROR open: %v", err)
		return
	}
	for _, off := range []int64{0, 1 << 20, (sectors - 1) * diskSector} {
		if _, err := f.WriteAt(diskPattern("vda", off), off); err != nil {
			say("GOVM-SYNC-ERROR write at %d: %v", off, err)
			return
		}
	}
	if err := f.Sync(); err != nil {
		say("GOVM-SYNC-ERROR fsync: %v", err)
		return
	}
	say("GOVM-SYNCED vda")
}
