package devices

// BootTimer is a port the guest's init writes to when it has booted
// (Firecracker's boot-timer device writes 123 to an MMIO address; govm uses
// a port so a guest can reach it through /dev/port). govm records the time
// from its own start to the first write.
const (
	BootTimerPort  = 0x4f0
	BootTimerPorts = 1
)

// BootTimer is the device.
type BootTimer struct {
	mark func(value uint8)
}

// NewBootTimer returns the device; mark is called with each value written.
func NewBootTimer(mark func(value uint8)) *BootTimer { return &BootTimer{mark: mark} }

// Read returns zero.
func (b *BootTimer) Read(off uint64, data []byte) { clear(data) }

// Write marks the time.
func (b *BootTimer) Write(off uint64, data []byte) {
	if len(data) > 0 {
		b.mark(data[0])
	}
}
