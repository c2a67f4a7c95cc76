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
// is ready; then it serves the driver's notifications in one of two ways,
// whichever the device implements: a worker goroutine per queue calling
// Processor.Process, or one goroutine running Looper.Loop for all the
// device's queues. An error from either means the driver broke the
// rules: the transport marks the device as needing reset.
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
	// Reset returns the device to its initial state; no Process or Loop
	// call is running or will run until the next Activate.
	Reset()
}

// Processor is a device whose queues are independent: Process(q) runs on
// queue q's own worker goroutine each time the driver notifies that queue.
type Processor interface {
	Device
	Process(q int) error
}

// Looper is a device that serves all its queues and a backend of its own
// on one goroutine, as a NIC serves its receive and transmit queues and
// its TAP together: one thread woken once for whatever is ready, not one
// per queue handing work to another. Loop waits on kicks[q] (an eventfd
// that becomes readable when the driver notifies queue q; -1 for a queue
// the driver left disabled) and returns nil when stop becomes readable.
//
// Loop runs on a goroutine that is not locked to a thread and should wait
// in Go's network poller (readyWaiter): then the thread that finds an fd
// ready runs the loop itself. A locked goroutine woken by the poller is
// handed from that thread to its own, two more thread switches per wake
// (docs/decisions/0004-nic-loop-in-netpoller.md).
type Looper interface {
	Device
	Loop(kicks []int, stop int) error
}
