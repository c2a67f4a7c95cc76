package virtio

import "github.com/govm/govm/mem"

// Feature bits common to all devices (virtio 1.2, 6).
const (
	FeatureIndirectDesc = 1 << 28
	FeatureEventIdx     = 1 << 29
	FeatureVersion1     = 1 << 32
)

// Device types (virtio 1.2, 5).
const (
	TypeNet   = 1
	TypeBlock = 2
)

// Device is a virtio device, independent of the transport. The transport
// negotiates features, sets up queues and calls Activate once the driver
// is ready; then Process(q) runs on queue q's own worker goroutine each
// time the driver notifies that queue. An error from Process means the
// driver broke the rules: the transport marks the device as needing reset.
type Device interface {
	Type() uint16
	Features() uint64
	NumQueues() int
	QueueMax() uint16
	ReadConfig(off uint64, data []byte)
	WriteConfig(off uint64, data []byte)
	// Activate hands the device its queues, the negotiated features and a
	// function that interrupts the driver for a queue.
	Activate(m *mem.Memory, features uint64, queues []*Queue, interrupt func(q int)) error
	Process(q int) error
	// Reset returns the device to its initial state; no Process call is
	// running or will run until the next Activate.
	Reset()
}
