package devices

// A notify port is a write-only I/O port register through which the guest
// tells govm something: a byte written at its base is handed to a
// function; reads return zero. Two guest-facing ports are notify ports,
// reached with an OUT instruction (package guest; no /dev/port needed).
const (
	// ExitPortAddr is the exit port: a write of v ends the VM with exit
	// code v, passed through unchanged (QEMU's isa-debug-exit maps v to
	// 2v+1 instead).
	ExitPortAddr = 0xf4
	ExitPorts    = 4
	// BootTimerPort is the boot timer: the guest's init writes it once it
	// has booted, and govm records the time from its own start (as
	// Firecracker's boot-timer device does over MMIO).
	BootTimerPort  = 0x4f0
	BootTimerPorts = 1
)

// NotifyPort is a notify port.
type NotifyPort struct {
	notify func(value uint8)
}

// NewNotifyPort returns a port that calls notify with each byte written
// at its base.
func NewNotifyPort(notify func(value uint8)) *NotifyPort { return &NotifyPort{notify: notify} }

// Read returns zero.
func (p *NotifyPort) Read(off uint64, data []byte) { clear(data) }

// Write hands the low byte of a write at the port's base to notify.
func (p *NotifyPort) Write(off uint64, data []byte) {
	if off == 0 && len(data) > 0 {
		p.notify(data[0])
	}
}
