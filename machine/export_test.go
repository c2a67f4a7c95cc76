package machine

import "github.com/govm/govm/mem"

// tinyGuest is the test-guest part of a Config for the tiny guests:
// testRAM of RAM, real mode at testCode, and the tuning tests run under
// (the host's threads and policies left alone, RAM plainly mapped).
func tinyGuest(pio, mmio []mapping) *testGuest {
	return &testGuest{
		RAM: []mem.Range{{Base: 0, Size: testRAM}}, Start: realMode(),
		PIO: pio, MMIO: mmio, Tuning: &tuning{xsave: true},
	}
}
