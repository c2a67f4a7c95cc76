package devices

// PVPanic is QEMU's pvpanic ISA device (docs/specs/pvpanic.rst in QEMU):
// reading the port returns the events the device supports, and the guest
// kernel writes PANICKED when it panics, so the VMM learns of a panic at
// once instead of after a timeout. The DSDT announces it as QEMU0001.
const (
	PVPanicPort  = 0x505
	PVPanicPorts = 1

	PVPanicPanicked    = 1 << 0
	PVPanicCrashLoaded = 1 << 1
	pvpanicEvents      = PVPanicPanicked | PVPanicCrashLoaded
)

// PVPanic is the device.
type PVPanic struct {
	panicked func(event uint8)
}

// NewPVPanic returns the device; panicked is called with the event bits
// the guest wrote.
func NewPVPanic(panicked func(event uint8)) *PVPanic { return &PVPanic{panicked: panicked} }

// Read returns the supported events.
func (p *PVPanic) Read(off uint64, data []byte) {
	clear(data)
	if len(data) > 0 {
		data[0] = pvpanicEvents
	}
}

// Write reports the guest's events.
func (p *PVPanic) Write(off uint64, data []byte) {
	if len(data) > 0 && data[0]&pvpanicEvents != 0 {
		p.panicked(data[0] & pvpanicEvents)
	}
}
