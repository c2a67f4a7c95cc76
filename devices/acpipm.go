package devices

import "github.com/govm/govm/acpi"

// ACPIPM serves the hardware-reduced ACPI sleep control, sleep status and
// reset registers the FADT points at (ACPI 6.5, 4.8.3.7 and 4.8.3.6). A
// sleep request with the \_S5 sleep type powers the VM off; a write of
// acpi.ResetValue to the reset register resets it.
type ACPIPM struct {
	power PowerFunc
}

// NewACPIPM returns the register block; power is called on a request.
func NewACPIPM(power PowerFunc) *ACPIPM { return &ACPIPM{power: power} }

// Read returns zero: no wake status is ever pending.
func (p *ACPIPM) Read(off uint64, data []byte) { clear(data) }

// Write handles sleep and reset requests.
func (p *ACPIPM) Write(off uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	v := data[0]
	switch off {
	case acpi.SleepControlOffset:
		if v&acpi.SleepEnable != 0 && (v&acpi.SleepTypeMask)>>acpi.SleepTypeShift == acpi.S5SleepType {
			p.power(PowerOff)
		}
	case acpi.ResetOffset:
		if v == acpi.ResetValue {
			p.power(PowerReset)
		}
	}
}
