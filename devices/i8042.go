package devices

// i8042 ports and commands (IBM PC/AT technical reference; Linux
// drivers/input/serio/i8042.h). Only what a guest needs to reset the
// machine is served: the status register reads "input buffer empty", and
// the pulse-reset command resets the VM.
const (
	I8042DataPort    = 0x60
	I8042CommandPort = 0x64
	I8042Ports       = 5 // 0x60-0x64; 0x61 is the PIT speaker, served by KVM

	i8042DataOff    = 0
	i8042CommandOff = 4

	i8042CmdPulseReset = 0xfe // pulse output line 0 (CPU reset)
	i8042StatusIdle    = 0x00 // output buffer empty, input buffer empty
)

// I8042 is the keyboard controller's reset line.
type I8042 struct {
	power PowerFunc
}

// NewI8042 returns the controller; power is called with PowerReset.
func NewI8042(power PowerFunc) *I8042 { return &I8042{power: power} }

// Read returns an idle status and an empty data register.
func (k *I8042) Read(off uint64, data []byte) {
	for i := range data {
		data[i] = i8042StatusIdle
	}
}

// Write resets the VM on the pulse-reset command.
func (k *I8042) Write(off uint64, data []byte) {
	if off == i8042CommandOff && len(data) > 0 && data[0] == i8042CmdPulseReset {
		k.power(PowerReset)
	}
}
