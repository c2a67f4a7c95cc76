package devices

import (
	"sync"
	"time"
)

// MC146818 CMOS RTC (Motorola MC146818A data sheet; Linux
// include/linux/mc146818rtc.h). Port 0x70 selects a register, port 0x71
// reads or writes it. The clock is the host's UTC time plus an offset the
// guest sets by writing the time registers (as hwclock --systohc does),
// so a guest never moves the host's clock. The update-ended, alarm and
// periodic interrupts raise IRQ 8 as the chip does: the line is high while
// an enabled flag is set in register C, and reading register C clears the
// flags and lowers it.
const (
	CMOSPort  = 0x70
	CMOSPorts = 2
	// RTCIRQ is the RTC's ISA interrupt (an I/O APIC input, edge-triggered
	// and active high as ISA interrupts are).
	RTCIRQ = 8

	cmosIndexOff  = 0
	cmosDataOff   = 1
	cmosIndexMask = 0x7f // bit 7 is the NMI disable bit
	cmosSize      = 128

	rtcSeconds      = 0x00
	rtcSecondsAlarm = 0x01
	rtcMinutes      = 0x02
	rtcMinutesAlarm = 0x03
	rtcHours        = 0x04
	rtcHoursAlarm   = 0x05
	rtcWeekday      = 0x06
	rtcDay          = 0x07
	rtcMonth        = 0x08
	rtcYear         = 0x09
	rtcRegA         = 0x0a
	rtcRegB         = 0x0b
	rtcRegC         = 0x0c
	rtcRegD         = 0x0d
	// RTCCentury is the CMOS RAM byte holding the century, as the FADT's
	// CENTURY field names it (ACPI 6.5, table 5.9) and PCs place it.
	RTCCentury = 0x32

	rtcRegADivider = 0x26 // 32.768 kHz time base, 1024 Hz rate; UIP clear
	rtcRegAUIP     = 0x80 // update in progress: never set, the clock is read whole
	rtcRegARate    = 0x0f // periodic rate select

	rtcRegBSet    = 0x80 // updates inhibited while the guest sets the time
	rtcRegBPIE    = 0x40
	rtcRegBAIE    = 0x20
	rtcRegBUIE    = 0x10
	rtcRegBBinary = 0x04
	rtcRegB24h    = 0x02
	rtcRegBIRQs   = rtcRegBPIE | rtcRegBAIE | rtcRegBUIE

	rtcRegBDefault = rtcRegB24h // 24-hour mode, BCD

	rtcRegCIRQF = 0x80 // an enabled flag is set: the line is high
	rtcRegCPF   = 0x40
	rtcRegCAF   = 0x20
	rtcRegCUF   = 0x10

	rtcRegDValid = 0x80 // valid RAM and time

	rtcAlarmDontCare = 0xc0 // an alarm byte with both top bits set matches any value
	rtcHourPM        = 0x80 // in 12-hour mode
	rtcBaseHz        = 32768
)

// CMOS is the RTC and its 128 bytes of CMOS RAM.
type CMOS struct {
	mu      sync.Mutex
	index   uint8
	ram     [cmosSize]uint8
	now     func() time.Time
	irq     Line
	offset  time.Duration // guest clock minus host clock
	lastSec int64         // guest second of the last update
	pieNext time.Time     // host time of the next periodic flag
	timer   *time.Timer
	level   bool
	stopped bool
	manual  bool // no timer: a test calls fire itself
}

// NewCMOS returns an RTC reading time from now (time.Now if nil) and
// raising irq (none if nil).
func NewCMOS(now func() time.Time, irq Line) *CMOS {
	if now == nil {
		now = time.Now
	}
	c := &CMOS{now: now, irq: irq}
	c.ram[rtcRegA] = rtcRegADivider
	c.ram[rtcRegB] = rtcRegBDefault
	c.ram[rtcRegD] = rtcRegDValid
	c.lastSec = now().Unix()
	return c
}

// Stop ends the RTC's timer: no interrupt is raised after it returns.
func (c *CMOS) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
	}
}

func bcd(v int) uint8 { return uint8(v/10<<4 | v%10) }

func unbcd(v uint8) int { return int(v>>4)*10 + int(v&0xf) }

// encode is a time register's value for guest time t in the current
// format (BCD or binary, 12- or 24-hour), or false for other registers.
func (c *CMOS) encode(reg uint8, t time.Time) (uint8, bool) {
	var v int
	pm := false
	switch reg {
	case rtcSeconds:
		v = t.Second()
	case rtcMinutes:
		v = t.Minute()
	case rtcHours:
		v = t.Hour()
		if c.ram[rtcRegB]&rtcRegB24h == 0 {
			pm = v >= 12
			if v = v % 12; v == 0 {
				v = 12
			}
		}
	case rtcWeekday:
		v = int(t.Weekday()) + 1
	case rtcDay:
		v = t.Day()
	case rtcMonth:
		v = int(t.Month())
	case rtcYear:
		v = t.Year() % 100
	case RTCCentury:
		v = t.Year() / 100
	default:
		return 0, false
	}
	b := uint8(v)
	if c.ram[rtcRegB]&rtcRegBBinary == 0 {
		b = bcd(v)
	}
	if pm {
		b |= rtcHourPM
	}
	return b, true
}

// decode is the time the time registers in CMOS RAM hold, or false if
// they hold no valid time.
func (c *CMOS) decode() (time.Time, bool) {
	val := func(reg uint8) int {
		b := c.ram[reg]
		if reg == rtcHours {
			b &^= rtcHourPM
		}
		if c.ram[rtcRegB]&rtcRegBBinary != 0 {
			return int(b)
		}
		return unbcd(b)
	}
	hour := val(rtcHours)
	if c.ram[rtcRegB]&rtcRegB24h == 0 {
		if hour < 1 || hour > 12 {
			return time.Time{}, false
		}
		hour %= 12
		if c.ram[rtcHours]&rtcHourPM != 0 {
			hour += 12
		}
	}
	year := val(RTCCentury)*100 + val(rtcYear)
	month, day, min, sec := val(rtcMonth), val(rtcDay), val(rtcMinutes), val(rtcSeconds)
	t := time.Date(year, time.Month(month), day, hour, min, sec, 0, time.UTC)
	if month < 1 || month > 12 || t.Day() != day || hour > 23 || min > 59 || sec > 59 {
		return time.Time{}, false
	}
	return t, true
}

// freeze copies the running clock into the time registers, which then
// hold still while the guest sets them.
func (c *CMOS) freeze(now time.Time) {
	gt := now.Add(c.offset)
	for _, reg := range []uint8{rtcSeconds, rtcMinutes, rtcHours, rtcWeekday, rtcDay, rtcMonth, rtcYear, RTCCentury} {
		c.ram[reg], _ = c.encode(reg, gt)
	}
}

// setClock makes the time registers the guest wrote the clock's time.
func (c *CMOS) setClock(now time.Time) {
	if t, ok := c.decode(); ok {
		c.offset = t.Sub(now.Truncate(time.Second))
		c.lastSec = t.Unix()
	}
}

// period is the periodic interrupt's period from register A's rate
// select, or 0 for none (MC146818A data sheet, table 5).
func (c *CMOS) period() time.Duration {
	rs := c.ram[rtcRegA] & rtcRegARate
	switch {
	case rs == 0:
		return 0
	case rs < 3:
		rs += 7 // 256 Hz and 128 Hz, as rates 8 and 9
	}
	return time.Second * time.Duration(1<<(rs-1)) / rtcBaseHz
}

// update sets register C's flags for the time that has passed until now
// and drives the line.
func (c *CMOS) update(now time.Time) {
	b := c.ram[rtcRegB]
	if b&rtcRegBSet == 0 {
		gt := now.Add(c.offset)
		if sec := gt.Unix(); sec != c.lastSec {
			c.lastSec = sec
			c.ram[rtcRegC] |= rtcRegCUF
			if c.alarmMatches(gt) {
				c.ram[rtcRegC] |= rtcRegCAF
			}
		}
	}
	if p := c.period(); p > 0 && b&rtcRegBPIE != 0 {
		if c.pieNext.IsZero() {
			c.pieNext = now.Add(p)
		} else if !now.Before(c.pieNext) {
			c.ram[rtcRegC] |= rtcRegCPF
			c.pieNext = c.pieNext.Add(p * (now.Sub(c.pieNext)/p + 1))
		}
	} else {
		c.pieNext = time.Time{}
	}
	c.drive()
}

func (c *CMOS) alarmMatches(gt time.Time) bool {
	for _, r := range [][2]uint8{{rtcSecondsAlarm, rtcSeconds}, {rtcMinutesAlarm, rtcMinutes}, {rtcHoursAlarm, rtcHours}} {
		a := c.ram[r[0]]
		if v, _ := c.encode(r[1], gt); a&rtcAlarmDontCare != rtcAlarmDontCare && a != v {
			return false
		}
	}
	return true
}

// drive sets IRQF from the enabled flags and raises the line on its
// rising edge.
func (c *CMOS) drive() {
	high := c.ram[rtcRegC]&c.ram[rtcRegB]&rtcRegBIRQs != 0
	if high {
		c.ram[rtcRegC] |= rtcRegCIRQF
	}
	if high != c.level && c.irq != nil {
		c.irq.SetLevel(high)
	}
	c.level = high
}

// schedule arms the timer for the next flag an enabled interrupt waits
// for: the next second of the guest's clock, or the next periodic tick.
func (c *CMOS) schedule(now time.Time) {
	if c.stopped || c.irq == nil || c.manual {
		return
	}
	b := c.ram[rtcRegB]
	var next time.Duration
	if b&(rtcRegBUIE|rtcRegBAIE) != 0 && b&rtcRegBSet == 0 {
		gt := now.Add(c.offset)
		next = gt.Truncate(time.Second).Add(time.Second).Sub(gt)
	}
	if !c.pieNext.IsZero() {
		if d := max(c.pieNext.Sub(now), 0); next == 0 || d < next {
			next = d
		}
	}
	switch {
	case next == 0 && c.timer != nil:
		c.timer.Stop()
	case next == 0:
	case c.timer == nil:
		c.timer = time.AfterFunc(next, c.fire)
	default:
		c.timer.Reset(next)
	}
}

func (c *CMOS) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	now := c.now()
	c.update(now)
	c.schedule(now)
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
			data[i] = c.readData()
		default:
			data[i] = 0xff
		}
	}
}

func (c *CMOS) readData() uint8 {
	now := c.now()
	c.update(now)
	switch {
	case c.index == rtcRegC:
		v := c.ram[rtcRegC]
		c.ram[rtcRegC] = 0
		c.drive()
		return v
	case c.ram[rtcRegB]&rtcRegBSet != 0:
		return c.ram[c.index]
	}
	if v, ok := c.encode(c.index, now.Add(c.offset)); ok {
		return v
	}
	return c.ram[c.index]
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
			c.writeData(b)
		}
	}
}

func (c *CMOS) writeData(b uint8) {
	now := c.now()
	c.update(now)
	_, isTime := c.encode(c.index, now)
	setting := c.ram[rtcRegB]&rtcRegBSet != 0
	switch {
	case c.index == rtcRegC || c.index == rtcRegD:
		// read-only
	case c.index == rtcRegA:
		c.ram[rtcRegA] = b &^ rtcRegAUIP
		c.pieNext = time.Time{}
	case c.index == rtcRegB:
		if b&rtcRegBSet != 0 && !setting {
			c.freeze(now)
		}
		c.ram[rtcRegB] = b
		if b&rtcRegBSet == 0 && setting {
			c.setClock(now)
		}
	case isTime && !setting:
		// A time register written while the clock runs sets it at once.
		c.freeze(now)
		c.ram[c.index] = b
		c.setClock(now)
	default:
		c.ram[c.index] = b
	}
	c.update(now)
	c.schedule(now)
}
