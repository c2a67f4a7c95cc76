package devices

// ExitPort lets a guest end the VM with an exit code of its choosing, like
// QEMU's isa-debug-exit but passing the value through unchanged: a write of
// v makes govm exit with v & 0xff. A guest program writes it through
// /dev/port (see package guest).
const (
	ExitPortAddr = 0xf4
	ExitPorts    = 4
)

// ExitPort is the exit-code register.
type ExitPort struct {
	exit func(code uint8)
}

// NewExitPort returns the device; exit is called with the code.
func NewExitPort(exit func(code uint8)) *ExitPort { return &ExitPort{exit: exit} }

// Read returns zero.
func (e *ExitPort) Read(off uint64, data []byte) { clear(data) }

// Write ends the VM with the low byte written.
func (e *ExitPort) Write(off uint64, data []byte) {
	if off == 0 && len(data) > 0 {
		e.exit(data[0])
	}
}
