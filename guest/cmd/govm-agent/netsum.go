package main

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

// newNetSum starts a transfer's checksum.
func newNetSum() hash.Hash32 { return crc32.New(castagnoli) }

// netSumHex is the checksum as the tests print it: 8 hex digits.
func netSumHex(h hash.Hash32) string { return hex.EncodeToString(h.Sum(nil)) }

// streamGen makes the bytes upload sends: xorshift64*, deterministic and
// cheap (a few instructions per 8 bytes).
type streamGen struct{ x uint64 }

func (g *streamGen) fill(b []byte) {
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
