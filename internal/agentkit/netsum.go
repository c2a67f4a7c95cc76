package agentkit

import (
	"encoding/binary"
	"encoding/hex"
	"hash"
	"hash/crc32"
)

// The network tests check each transfer with CRC-32C (Castagnoli), on
// both ends. It takes one SSE4.2 instruction per 8 bytes; SHA-256, which
// they used before, kept the guest's CPU in user mode for most of a
// transfer, and under the nested emulator an interrupt that arrives
// while an L2 guest runs user code is what sets off QEMU TCG's fault
// (every spoiled run's trace ends in a timer interrupt taken from user
// mode). A 32-bit CRC still catches any burst error up to 32 bits and
// misses other damage with odds of 2^-32.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewNetSum starts a transfer's checksum.
func NewNetSum() hash.Hash32 { return crc32.New(castagnoli) }

// NetSumHex is the checksum as the tests print it: 8 hex digits.
func NetSumHex(h hash.Hash32) string { return hex.EncodeToString(h.Sum(nil)) }

// StreamGen makes the bytes upload sends: xorshift64*, deterministic and
// cheap (a few instructions per 8 bytes).
type StreamGen struct{ x uint64 }

// NewStreamGen starts a stream from a non-zero seed.
func NewStreamGen(seed uint64) *StreamGen { return &StreamGen{x: seed} }

// Fill fills b with the stream's next bytes.
func (g *StreamGen) Fill(b []byte) {
	for len(b) >= 8 {
		g.x ^= g.x >> 12
		g.x ^= g.x << 25
		g.x ^= g.x >> 27
		binary.LittleEndian.PutUint64(b, g.x*0x2545f4914f6cdd1d)
		b = b[8:]
	}
	for i := range b {
		b[i] = byte(g.x >> (8 * i))
	}
}
