// Package bustest has a bus.Device for tests of what reaches a bus: it
// records every access and answers reads with a pattern of the offsets.
package bustest

import "sync"

// Access is one access a Recorder saw.
type Access struct {
	Off  uint64
	Data []byte
}

// Recorder records accesses. Read fills data with 0xa0 plus each byte's
// offset, so a test can tell which offset a read reached.
type Recorder struct {
	mu     sync.Mutex
	Writes []Access
	Reads  []Access
}

// Read records the read and fills data.
func (r *Recorder) Read(off uint64, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range data {
		data[i] = byte(0xa0 + off + uint64(i))
	}
	r.Reads = append(r.Reads, Access{off, append([]byte(nil), data...)})
}

// Write records the write.
func (r *Recorder) Write(off uint64, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Writes = append(r.Writes, Access{off, append([]byte(nil), data...)})
}
