package devices

import (
	"sync"
	"time"
)

// MC146818 CMOS RTC (Motorola MC146818A data sheet; Linux
// include/linux/mc146818rtc.h). Port 0x70 selects a register, port 0x71
// reads or writes it. The clock reads the host's UTC time; the guest may
// write registers (kept in CMOS RAM) but does not move the clock.
const (
	CMOSPort  = 0x70
	CMOSPorts = 2

	cmosIndexOff  = 0
	cmosDataOff   = 1
	cmosIndexMask = 0x7f // bit 7 is the NMI disable bit
	cmosSize      = 128

	rtcSeconds = 0x00
	rtcMinutes = 0x02
	rtcHours   = 0x04
	rtcWeekday = 0x06
	rtcDay     = 0x07
	rtcMonth   = 0x08
	rtcYear    = 0x09
	rtcRegA    = 0x0a
	rtcRegB    = 0x0b
	rtcRegC    = 0x0c
	rtcRegD    = 0x0d
	rtcCentury = 0x32

	rtcRegBDefault = 0x02 // 24-hour mode, BCD
	rtcRegB24h     = 0x02
	rtcRegBBinary  = 0x04
	rtcRegDValid   = 0x80 // valid RAM and time
	rtcRegADivider = 0x26 // 32.768 kHz time base, 1024 Hz rate; UIP clear
)

// CMOS is the RTC and its 128 bytes of CMOS RAM.
type CMOS struct {
	mu    sync.Mutex
	index uint8
	ram   [cmosSize]uint8
	now   func() time.Time
}

// NewCMOS returns an RTC reading time from now (time.Now if nil).
func NewCMOS(now func() time.Time) *CMOS {
	if now == nil {
		now = time.Now
	}
	c := &CMOS{now: now}
	c.ram[rtcRegA] = rtcRegADivider
	c.ram[rtcRegB] = rtcRegBDefault
	c.ram[rtcRegD] = rtcRegDValid
	return c
}

func bcd(v int) uint8 { return uint8(v/10<<4 | v%10) }

func (c *CMOS) clock(reg uint8) (uint8, bool) {
	t := c.now().UTC()
	var v int
	switch reg {
	case rtcSeconds:
		v = t.Second()
	case rtcMinutes:
		v = t.Minute()
	case rtcHours:
		v = t.Hour()
	case rtcWeekday:
		v = int(t.Weekday()) + 1
	case rtcDay:
		v = t.Day()
	case rtcMonth:
		v = int(t.Month())
	case rtcYear:
		v = t.Year() % 100
	case rtcCentury:
		v = t.Year() / 100
	default:
		return 0, false
	}
	if c.ram[rtcRegB]&rtcRegBBinary != 0 {
		return uint8(v), true
	}
	return bcd(v), true
}

// Read serves the index and data ports.
func (c *CMOS) Read(off uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range data {
		switch off + uint64(i) {
		case cmosIndexOff:
			data[i] = c.index
		case cmosDataOff:
			if v, ok := c.clock(c.index); ok {
				data[i] = v
			} else if c.index == rtcRegC {
				data[i] = 0 // no interrupt flags: govm raises no RTC IRQ
			} else {
				data[i] = c.ram[c.index]
			}
		default:
			data[i] = 0xff
		}
	}
}

// Write serves the index and data ports.
func (c *CMOS) Write(off uint64, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, b := range data {
		switch off + uint64(i) {
		case cmosIndexOff:
			c.index = b & cmosIndexMask
		case cmosDataOff:
			switch c.index {
			case rtcRegC, rtcRegD:
				// read-only
			case rtcRegA:
				c.ram[rtcRegA] = b &^ 0x80 // UIP is read-only
			default:
				c.ram[c.index] = b
			}
		}
	}
}
