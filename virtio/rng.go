package virtio

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/mem"
)

// virtio-rng, the entropy device (virtio 1.2, 5.4): one request queue
// whose device-writable buffers the device fills with random bytes, no
// feature bits, no configuration space.
const (
	TypeRNG     = 4
	rngQueueMax = 64
	// rngMaxChain bounds the bytes one chain gets, so a driver posting
	// huge buffers cannot keep the worker filling them for long; the
	// used length tells the driver how many it got (5.4.6.1).
	rngMaxChain = 64 << 10
)

// ErrRNGReadable is a device-readable buffer on the request queue: the
// device only writes there (5.4.6.1).
var ErrRNGReadable = errors.New("virtio-rng: device-readable buffer in a request")

// RNG is a virtio-rng device serving the host's getrandom(2): a guest
// never waits for entropy at boot.
type RNG struct {
	mu        sync.Mutex // guards the fields below against Activate/Reset
	mem       *mem.Memory
	q         *Queue
	interrupt func(q int)
	// The worker's own: the memory Process serves, and fill bound to
	// it once, so a request allocates nothing.
	cur   *mem.Memory
	serve func(chain []Desc) (uint32, error)
}

// NewRNG makes the device.
func NewRNG() *RNG {
	r := &RNG{}
	r.serve = func(chain []Desc) (uint32, error) { return r.fill(r.cur, chain) }
	return r
}

func (r *RNG) Type() uint16                  { return TypeRNG }
func (r *RNG) Features() uint64              { return FeatureVersion1 | FeatureEventIdx | FeatureIndirectDesc }
func (r *RNG) NumQueues() int                { return 1 }
func (r *RNG) QueueMax() uint16              { return rngQueueMax }
func (r *RNG) ReadConfig(_ uint64, d []byte) { clear(d) }
func (r *RNG) WriteConfig(uint64, []byte)    {}

func (r *RNG) Activate(m *mem.Memory, _ uint64, queues []*Queue, interrupt func(q int)) error {
	if len(queues) != 1 || queues[0] == nil {
		return fmt.Errorf("virtio-rng: the driver must enable the request queue")
	}
	r.mu.Lock()
	r.mem, r.q, r.interrupt = m, queues[0], interrupt
	r.mu.Unlock()
	return nil
}

func (r *RNG) Reset() {
	r.mu.Lock()
	r.mem, r.q, r.interrupt = nil, nil, nil
	r.mu.Unlock()
}

// Process fills every request the driver queued, straight into guest
// memory.
func (r *RNG) Process(int) error {
	r.mu.Lock()
	m, q, interrupt := r.mem, r.q, r.interrupt
	r.mu.Unlock()
	if q == nil {
		return nil
	}
	r.cur = m
	return q.ServeAvailable(m, 0, interrupt, r.serve)
}

// fill writes random bytes into the chain's buffers, in order, up to
// rngMaxChain, and returns how many.
func (r *RNG) fill(m *mem.Memory, chain []Desc) (uint32, error) {
	var n uint32
	for _, d := range chain {
		if !d.Write {
			return 0, ErrRNGReadable
		}
		l := min(d.Len, rngMaxChain-n)
		if l == 0 {
			break
		}
		b, err := m.Slice(d.Addr, uint64(l))
		if err != nil {
			return 0, err
		}
		for len(b) > 0 {
			got, err := unix.Getrandom(b, 0)
			if err != nil {
				if errors.Is(err, unix.EINTR) {
					continue
				}
				return n, nil // what was filled is the answer
			}
			b = b[got:]
			n += uint32(got)
		}
	}
	return n, nil
}
