package virtio

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/govm/govm/mem"
)

// SeedRecorder writes chains a real driver made available as seed inputs
// for this package's fuzz targets, in Go's corpus file format, one
// directory per target (dir/FuzzBlkRequest/...): copied into
// testdata/fuzz, they start the fuzzer from real traffic rather than
// from hand-written requests. It is for development only
// (GOVM_DEBUG_SEEDS, docs/testing.md): it copies guest data to files.
//
// It keeps one seed per kind of request (type, descriptor count and
// directions) and at most seedsPerTarget per target, so a boot's
// thousands of requests make a small corpus.
type SeedRecorder struct {
	dir  string
	mu   sync.Mutex
	seen map[string]bool
	n    map[string]int
}

// seedsPerTarget bounds the seeds one recorder writes for a target.
const seedsPerTarget = 64

// Fuzz targets the recorder writes seeds for (fuzz_test.go,
// fuzz_fs_test.go).
const (
	seedBlk     = "FuzzBlkRequest"
	seedNetTx   = "FuzzNetTx"
	seedFS      = "FuzzFSRequest"
	seedConsole = "FuzzConsoleControl"
)

// The fuzz targets' chain encoding (fuzzChain): up to seedMaxDescs
// descriptors of seedDescSize bytes from offset 0 (address, length,
// flags: seedWriteDesc, seedLastDesc), lengths below seedMaxLen, in a
// guest memory of seedMemSize bytes that holds the encoding itself from
// address 0.
const (
	seedMaxDescs  = 4
	seedDescSize  = 13
	seedMaxLen    = 0x3000
	seedJoinMax   = seedMaxLen - SectorSize // a whole number of sectors below seedMaxLen
	seedMemSize   = 64 << 10
	seedDataAt    = 0x100 // the first buffer, past the descriptors
	seedWriteDesc = 1
	seedLastDesc  = 0x80
	seedAlign     = 16
)

// NewSeedRecorder makes dir and a directory in it per target.
func NewSeedRecorder(dir string) (*SeedRecorder, error) {
	for _, t := range []string{seedBlk, seedNetTx, seedFS, seedConsole} {
		if err := os.MkdirAll(filepath.Join(dir, t), 0o755); err != nil {
			return nil, fmt.Errorf("seed recorder: %w", err)
		}
	}
	return &SeedRecorder{dir: dir, seen: map[string]bool{}, n: map[string]int{}}, nil
}

// observer returns what queue qi of a device of type typ reports its
// chains to, or nil when no fuzz target takes that queue's requests.
func (r *SeedRecorder) observer(typ uint16, qi int, features uint64) func(*mem.Memory, []Desc) {
	if r == nil {
		return nil
	}
	switch {
	case typ == TypeBlock:
		return func(m *mem.Memory, c []Desc) { r.chainSeed(seedBlk, m, c, blkSeedKind, "bool(false)") }
	case typ == TypeNet && qi == netTxQueue:
		return func(m *mem.Memory, c []Desc) {
			r.chainSeed(seedNetTx, m, c, netSeedKind, fmt.Sprintf("uint64(%d)", features), "bool(true)")
		}
	case typ == TypeFS:
		return r.fsSeed
	case typ == TypeConsole && qi == consoleCtrlTx:
		return r.consoleSeed
	}
	return nil
}

// chainSeed encodes chain as fuzzChain reads it, each buffer at its own
// place past the descriptors, holding what the driver wrote there if the
// device reads it. A chain longer than fuzzChain reads keeps its first
// and last buffers (a request's header and status) with those between
// them joined into one.
func (r *SeedRecorder) chainSeed(target string, m *mem.Memory, chain []Desc, kindOf func([]byte) string, rest ...string) {
	type buf struct {
		write bool
		data  []byte // what the device reads; nil for a buffer it writes
		n     uint32
	}
	bufs := make([]buf, 0, seedMaxDescs)
	for i, d := range chain {
		if len(chain) > seedMaxDescs && i > 1 && i < len(chain)-1 {
			// Joined into buffer 1, up to the largest whole sector that fits.
			b := &bufs[1]
			n := min(d.Len, seedJoinMax-b.n)
			if !b.write {
				p := make([]byte, n)
				if m.ReadAt(p, d.Addr) != nil {
					return
				}
				b.data = append(b.data, p...)
			}
			b.n += n
			continue
		}
		b := buf{write: d.Write, n: min(d.Len, seedJoinMax)}
		if !d.Write {
			b.data = make([]byte, b.n)
			if m.ReadAt(b.data, d.Addr) != nil {
				return
			}
		}
		bufs = append(bufs, b)
	}
	enc := make([]byte, seedDataAt, seedMemSize)
	at := uint64(seedDataAt)
	var kind strings.Builder
	var readable []byte
	for i, b := range bufs {
		n := b.n
		if at+uint64(n) > seedMemSize {
			n = uint32(seedMemSize - at)
		}
		e := enc[i*seedDescSize:]
		binary.LittleEndian.PutUint64(e, at)
		binary.LittleEndian.PutUint32(e[8:], n)
		if i == len(bufs)-1 {
			e[12] |= seedLastDesc
		}
		if b.write {
			e[12] |= seedWriteDesc
			kind.WriteByte('w')
		} else {
			kind.WriteByte('r')
			enc = append(enc[:at], b.data[:n]...)
			readable = append(readable, b.data[:n]...)
		}
		at = min((at+uint64(n)+seedAlign-1)&^(seedAlign-1), seedMemSize)
	}
	kind.WriteString(kindOf(readable))
	r.write(target, kind.String(), append([]string{fmt.Sprintf("[]byte(%q)", enc)}, rest...))
}

// blkSeedKind is a virtio-blk request's type, which leads its header
// (5.2.6).
func blkSeedKind(b []byte) string {
	if len(b) < 4 {
		return "short"
	}
	return fmt.Sprint(binary.LittleEndian.Uint32(b))
}

// netSeedKind is a transmitted frame's GSO type (the virtio-net header,
// 5.1.6), EtherType and, for IPv4, protocol.
func netSeedKind(b []byte) string {
	const ethType, ipv4Proto = 12, 14 + 9
	if len(b) < NetHeaderSize+ethType+2 {
		return "short"
	}
	f := b[NetHeaderSize:]
	k := fmt.Sprintf("gso%d-%x", b[1], f[ethType:ethType+2])
	if f[ethType] == 0x08 && f[ethType+1] == 0 && len(f) > ipv4Proto {
		k += fmt.Sprintf("-%d", f[ipv4Proto])
	}
	return k
}

// fsSeed records a FUSE request as FuzzFSRequest takes it: the bytes of
// its readable buffers, where the first ends, and the room for the reply.
func (r *SeedRecorder) fsSeed(m *mem.Memory, chain []Desc) {
	var req []byte
	split, out := -1, uint64(0)
	for _, d := range chain {
		if d.Write {
			out += uint64(d.Len)
			continue
		}
		if split < 0 {
			split = int(d.Len)
		}
		n := min(d.Len, seedMaxLen)
		buf := make([]byte, n)
		if m.ReadAt(buf, d.Addr) != nil {
			return
		}
		req = append(req, buf...)
	}
	if len(req) < 8 {
		return
	}
	op := binary.LittleEndian.Uint32(req[4:]) // fuse_in_header.opcode
	r.write(seedFS, fmt.Sprint(op), []string{fmt.Sprintf("[]byte(%q)", req),
		fmt.Sprintf("uint16(%d)", min(max(split, 0), 0xffff)), fmt.Sprintf("uint16(%d)", min(out, 0xffff))})
}

// consoleSeed records a control message from the driver.
func (r *SeedRecorder) consoleSeed(m *mem.Memory, chain []Desc) {
	if len(chain) == 0 || chain[0].Write || chain[0].Len < consoleCtrlSize {
		return
	}
	var msg [consoleCtrlSize]byte
	if m.ReadAt(msg[:], chain[0].Addr) != nil {
		return
	}
	event := binary.LittleEndian.Uint16(msg[4:])
	r.write(seedConsole, fmt.Sprint(event), []string{fmt.Sprintf("[]byte(%q)", msg[:])})
}

// write stores one seed for target unless one of its kind is stored or
// the target has its share. A failed write is dropped: recording must
// never disturb the guest.
func (r *SeedRecorder) write(target, kind string, values []string) {
	r.mu.Lock()
	key := target + "/" + kind
	if r.seen[key] || r.n[target] >= seedsPerTarget {
		r.mu.Unlock()
		return
	}
	r.seen[key] = true
	r.n[target]++
	r.mu.Unlock()
	body := "go test fuzz v1\n" + strings.Join(values, "\n") + "\n"
	sum := sha256.Sum256([]byte(body))
	name := filepath.Join(r.dir, target, "real-"+hex.EncodeToString(sum[:8]))
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		if !errors.Is(err, os.ErrExist) {
			r.mu.Lock()
			r.seen[key] = false
			r.n[target]--
			r.mu.Unlock()
		}
		return
	}
	_, _ = f.WriteString(body)
	_ = f.Close()
}
