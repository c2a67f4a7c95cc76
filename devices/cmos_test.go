package devices

import (
	"testing"
	"time"
)

// cmosAt is an RTC whose host clock the test moves.
type cmosAt struct {
	t    *testing.T
	c    *CMOS
	now  time.Time
	line *lineRec
}

func newCMOSAt(t *testing.T, now time.Time) *cmosAt {
	a := &cmosAt{t: t, now: now, line: &lineRec{}}
	a.c = NewCMOS(func() time.Time { return a.now }, a.line)
	a.c.manual = true // the test calls fire as the clock it moves is due
	return a
}

func (a *cmosAt) read(reg byte) byte {
	a.c.Write(cmosIndexOff, []byte{reg})
	b := []byte{0}
	a.c.Read(cmosDataOff, b)
	return b[0]
}

func (a *cmosAt) write(reg, v byte) {
	a.c.Write(cmosIndexOff, []byte{reg})
	a.c.Write(cmosDataOff, []byte{v})
}

// TestCMOSSetTime: the guest sets the clock as Linux's mc146818_set_time
// does (SET, the registers, SET cleared); the clock then runs from there
// with the host's, in each format, and an invalid time changes nothing.
func TestCMOSSetTime(t *testing.T) {
	host := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		regB   byte
		set    map[byte]byte // registers written under SET
		want   map[byte]byte // read 90 s later
		offset time.Duration
	}{
		{"bcd 24h", rtcRegB24h,
			map[byte]byte{rtcSeconds: 0x30, rtcMinutes: 0x59, rtcHours: 0x23, rtcDay: 0x31, rtcMonth: 0x12, rtcYear: 0x99, RTCCentury: 0x19},
			map[byte]byte{rtcSeconds: 0x00, rtcMinutes: 0x01, rtcHours: 0x00, rtcDay: 0x01, rtcMonth: 0x01, rtcYear: 0x00, RTCCentury: 0x20},
			time.Date(1999, 12, 31, 23, 59, 30, 0, time.UTC).Sub(host)},
		{"binary 24h", rtcRegB24h | rtcRegBBinary,
			map[byte]byte{rtcSeconds: 5, rtcMinutes: 4, rtcHours: 3, rtcDay: 2, rtcMonth: 1, rtcYear: 30, RTCCentury: 20},
			map[byte]byte{rtcSeconds: 35, rtcMinutes: 5, rtcHours: 3, rtcDay: 2, rtcMonth: 1, rtcYear: 30},
			time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).Sub(host)},
		{"bcd 12h pm", 0,
			map[byte]byte{rtcSeconds: 0x00, rtcMinutes: 0x00, rtcHours: rtcHourPM | 0x12, rtcDay: 0x07, rtcMonth: 0x12, rtcYear: 0x26, RTCCentury: 0x20},
			map[byte]byte{rtcSeconds: 0x30, rtcMinutes: 0x01, rtcHours: rtcHourPM | 0x12},
			time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC).Sub(host)},
		{"invalid month", rtcRegB24h,
			map[byte]byte{rtcMonth: 0x13},
			map[byte]byte{rtcSeconds: 0x40, rtcMinutes: 0x01, rtcHours: 0x22}, // the host clock, 100 s on
			0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newCMOSAt(t, host)
			a.write(rtcRegB, tt.regB|rtcRegBSet)
			for reg, v := range tt.set {
				a.write(reg, v)
			}
			a.now = a.now.Add(10 * time.Second) // frozen while SET
			if tt.set[rtcSeconds] != 0 && a.read(rtcSeconds) != tt.set[rtcSeconds] {
				t.Errorf("seconds moved while SET")
			}
			a.write(rtcRegB, tt.regB)
			a.now = a.now.Add(90 * time.Second)
			for reg, want := range tt.want {
				if got := a.read(reg); got != want {
					t.Errorf("reg %#x = %#x, want %#x", reg, got, want)
				}
			}
			if a.c.offset != tt.offset-10*time.Second && tt.offset != 0 {
				t.Errorf("offset %v, want %v", a.c.offset, tt.offset-10*time.Second)
			}
		})
	}
}

// TestCMOSInterrupts: each interrupt sets its flag when due, the line
// rises only for enabled flags, and reading register C clears the flags
// and lowers it.
func TestCMOSInterrupts(t *testing.T) {
	start := time.Date(2026, 12, 7, 22, 0, 0, 500_000_000, time.UTC)
	t.Run("update", func(t *testing.T) {
		a := newCMOSAt(t, start)
		a.now = a.now.Add(time.Second)
		if c := a.read(rtcRegC); c != rtcRegCUF {
			t.Fatalf("reg C %#x with UIE off, want UF alone", c)
		}
		if len(a.line.levels) != 0 {
			t.Fatal("line raised for a disabled interrupt")
		}
		a.write(rtcRegB, rtcRegB24h|rtcRegBUIE)
		a.now = a.now.Add(300 * time.Millisecond) // same second: nothing
		if c := a.read(rtcRegC); c != 0 {
			t.Fatalf("reg C %#x within the second", c)
		}
		a.now = a.now.Add(time.Second)
		a.c.fire()
		if len(a.line.levels) != 1 || !a.line.levels[0] {
			t.Fatalf("line %v after a second with UIE, want raised", a.line.levels)
		}
		if c := a.read(rtcRegC); c != rtcRegCIRQF|rtcRegCUF {
			t.Fatalf("reg C %#x, want IRQF|UF", c)
		}
		if len(a.line.levels) != 2 || a.line.levels[1] || a.read(rtcRegC) != 0 {
			t.Fatalf("line %v after reading C, want lowered and C clear", a.line.levels)
		}
	})
	t.Run("alarm", func(t *testing.T) {
		a := newCMOSAt(t, start) // 22:00:00
		a.write(rtcSecondsAlarm, 0x03)
		a.write(rtcMinutesAlarm, rtcAlarmDontCare)
		a.write(rtcHoursAlarm, 0x22)
		a.write(rtcRegB, rtcRegB24h|rtcRegBAIE)
		for s := 1; s <= 3; s++ {
			a.now = a.now.Add(time.Second)
			a.c.fire()
			c := a.read(rtcRegC)
			if want := map[bool]byte{true: rtcRegCIRQF | rtcRegCAF | rtcRegCUF, false: rtcRegCUF}[s == 3]; c != want {
				t.Fatalf("at 22:00:0%d reg C %#x, want %#x", s, c, want)
			}
		}
	})
	t.Run("periodic", func(t *testing.T) {
		a := newCMOSAt(t, start)
		a.write(rtcRegA, 0x26) // 1024 Hz
		if p := a.c.period(); p != time.Second/1024 {
			t.Fatalf("period %v, want 1/1024 s", p)
		}
		a.write(rtcRegB, rtcRegB24h|rtcRegBPIE)
		a.now = a.now.Add(500 * time.Microsecond)
		if c := a.read(rtcRegC); c != 0 {
			t.Fatalf("reg C %#x before the period", c)
		}
		a.now = a.now.Add(5 * time.Millisecond) // several periods: one flag
		a.c.fire()
		if c := a.read(rtcRegC); c != rtcRegCIRQF|rtcRegCPF {
			t.Fatalf("reg C %#x after periods, want IRQF|PF", c)
		}
		a.write(rtcRegA, 0x20) // rate 0: none
		a.now = a.now.Add(time.Millisecond * 5)
		if c := a.read(rtcRegC) & rtcRegCPF; c != 0 {
			t.Fatal("PF with the rate off")
		}
	})
}

// TestCMOSTimerRaises: with UIE on and the host's clock, the RTC's own
// timer raises the line within a second and a bit, and not after Stop.
func TestCMOSTimerRaises(t *testing.T) {
	raised := make(chan bool, 4)
	c := NewCMOS(nil, lineFunc(func(high bool) { raised <- high }))
	c.Write(cmosIndexOff, []byte{rtcRegB})
	c.Write(cmosDataOff, []byte{rtcRegB24h | rtcRegBUIE})
	select {
	case high := <-raised:
		if !high {
			t.Fatal("line lowered first")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no update interrupt within 3 s")
	}
	c.Stop()
	c.Write(cmosIndexOff, []byte{rtcRegC})
	c.Read(cmosDataOff, []byte{0}) // lowers the line
	<-raised
	select {
	case <-raised:
		t.Fatal("interrupt after Stop")
	case <-time.After(1500 * time.Millisecond):
	}
}

type lineFunc func(bool)

func (f lineFunc) SetLevel(high bool) { f(high) }
