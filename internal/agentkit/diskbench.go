package agentkit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The disk benchmark: the same code measures a virtio disk inside the
// guest (govm.action=diskbench, on /dev/vda) and the image file on the
// host (`govm-host bench FILE`), so the two figures compare like with
// like. Every access is O_DIRECT where the file system allows it (the guest
// disk does; a nested L1 keeps the image on tmpfs, which does not), so
// neither side measures a page cache it need not.
const (
	benchBlock     = 1 << 20 // sequential transfer size
	benchSeqBytes  = 32 << 20
	benchRandBlock = 4096
	benchRandTime  = 3 * time.Second
)

// BenchResult is one run's figures.
type BenchResult struct {
	SeqWriteMBps, SeqReadMBps, RandReadIOPS float64
	Buffered                                bool // O_DIRECT was refused
}

// DiskBench runs the three measurements on path, which must hold at least
// benchSeqBytes.
func DiskBench(path string) (BenchResult, error) {
	var r BenchResult
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if errors.Is(err, unix.EINVAL) {
		// A file system without O_DIRECT (tmpfs, where a nested L1
		// keeps the image): measured through the page cache instead.
		r.Buffered = true
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return r, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return r, err
	}
	if size < benchSeqBytes {
		return r, fmt.Errorf("%s holds %d bytes; the benchmark needs %d", path, size, benchSeqBytes)
	}
	buf := AlignedBuffer(benchBlock)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	mbps := func(d time.Duration) float64 { return float64(benchSeqBytes) / (1 << 20) / d.Seconds() }

	start := time.Now()
	for off := int64(0); off < benchSeqBytes; off += benchBlock {
		if _, err := f.WriteAt(buf, off); err != nil {
			return r, fmt.Errorf("write at %d: %w", off, err)
		}
	}
	if err := f.Sync(); err != nil {
		return r, fmt.Errorf("fsync: %w", err)
	}
	r.SeqWriteMBps = mbps(time.Since(start))

	start = time.Now()
	for off := int64(0); off < benchSeqBytes; off += benchBlock {
		if _, err := f.ReadAt(buf, off); err != nil {
			return r, fmt.Errorf("read at %d: %w", off, err)
		}
	}
	r.SeqReadMBps = mbps(time.Since(start))

	blocks := size / benchRandBlock
	rng := rand.New(rand.NewPCG(1, 2))
	small := buf[:benchRandBlock]
	n := 0
	start = time.Now()
	for time.Since(start) < benchRandTime {
		off := rng.Int64N(blocks) * benchRandBlock
		if _, err := f.ReadAt(small, off); err != nil {
			return r, fmt.Errorf("read at %d: %w", off, err)
		}
		n++
	}
	r.RandReadIOPS = float64(n) / time.Since(start).Seconds()
	return r, nil
}

// SayBench runs DiskBench and says the figures with out on lines
// starting with prefix.
func SayBench(out func(format string, args ...any), prefix, path string) error {
	r, err := DiskBench(path)
	if err != nil {
		out("%s-ERROR %v", prefix, err)
		return err
	}
	out("%s seq-write-MBps=%.1f seq-read-MBps=%.1f rand-4k-read-IOPS=%.0f buffered=%v", prefix, r.SeqWriteMBps, r.SeqReadMBps, r.RandReadIOPS, r.Buffered)
	return nil
}

// AlignedBuffer returns n bytes aligned for O_DIRECT: an anonymous
// mapping is page aligned.
func AlignedBuffer(n int) []byte {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		panic(err)
	}
	return b
}
