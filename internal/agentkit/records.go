package agentkit

import "fmt"

// The crash-consistency records (govm.action=records, and the host's
// govm-host checkrecs): record n is RecordSize bytes at n*RecordSize on
// /dev/vda, a header naming n and a body every byte of which depends on n
// and its position, so a lost, stale or torn record cannot pass.
const RecordSize = 4096

// Record is record n as it stands on the disk.
func Record(n int64) []byte {
	b := make([]byte, RecordSize)
	h := fmt.Sprintf("GOVM-REC %08d\n", n)
	copy(b, h)
	for i := len(h); i < RecordSize; i++ {
		b[i] = byte((n*131 + int64(i)*7) % 251)
	}
	return b
}
