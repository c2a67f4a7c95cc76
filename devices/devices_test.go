package devices

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type lineRec struct {
	mu     sync.Mutex
	levels []bool
}

func (l *lineRec) SetLevel(high bool) {
	l.mu.Lock()
	l.levels = append(l.levels, high)
	l.mu.Unlock()
}

func (l *lineRec) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.levels)
}

func (l *lineRec) last() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.levels) > 0 && l.levels[len(l.levels)-1]
}

// waitHigh waits for the line to be raised (by the transmitter's timer).
func (l *lineRec) waitHigh(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !l.last(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the line was not raised")
		}
	}
}

func rd(s *Serial, off uint64) byte {
	b := []byte{0}
	s.Read(off, b)
	return b[0]
}

func wr(s *Serial, off uint64, v byte) { s.Write(off, []byte{v}) }

func TestSerialRegisters(t *testing.T) {
	var out bytes.Buffer
	irq := &lineRec{}
	s := NewSerial(&out, irq)
	// Linux's autoconfig: IER reads back, scratch works, FIFO shows as 16550A.
	wr(s, uartIER, 0x0f)
	if v := rd(s, uartIER); v != 0x0f {
		t.Errorf("IER = %#x", v)
	}
	wr(s, uartIER, 0)
	wr(s, uartSCR, 0xa5)
	if v := rd(s, uartSCR); v != 0xa5 {
		t.Errorf("SCR = %#x", v)
	}
	wr(s, uartFCR, fcrEnable)
	if v := rd(s, uartIIR); v>>6 != 3 || v&iirNoInt == 0 {
		t.Errorf("IIR = %#x, want FIFO bits and no interrupt", v)
	}
	if v := rd(s, uartLSR); v&(lsrTHRE|lsrTEMT) != lsrTHRE|lsrTEMT || v&lsrDR != 0 {
		t.Errorf("LSR = %#x", v)
	}
	// Divisor latch does not disturb THR/IER.
	wr(s, uartLCR, lcrDLAB)
	wr(s, uartDLL, 1)
	wr(s, uartDLM, 0)
	if rd(s, uartDLL) != 1 {
		t.Error("DLL")
	}
	wr(s, uartLCR, 0x03)
	wr(s, uartTHR, 'A')
	wr(s, uartTHR, 'B')
	if out.String() != "AB" {
		t.Errorf("output %q", out.String())
	}
	// Loopback: a written byte comes back, nothing goes out.
	wr(s, uartMCR, mcrLoop|mcrRTS)
	wr(s, uartTHR, 'L')
	if rd(s, uartLSR)&lsrDR == 0 || rd(s, uartRBR) != 'L' || out.String() != "AB" {
		t.Error("loopback")
	}
	if rd(s, uartMSR)&msrCTS == 0 {
		t.Error("loopback RTS->CTS")
	}
	if len(irq.levels) != 0 {
		t.Errorf("interrupts raised with IER=0: %v", irq.levels)
	}
}

// burstOut records writes and EndBurst calls in order.
type burstOut struct{ log []string }

func (b *burstOut) Write(p []byte) (int, error) { b.log = append(b.log, string(p)); return len(p), nil }
func (b *burstOut) EndBurst()                   { b.log = append(b.log, "|") }

// TestSerialEndsBursts: an IER write tells an output that wants it that a
// burst has ended (Linux's console restores IER after each message); a
// DLM write at the same offset does not.
func TestSerialEndsBursts(t *testing.T) {
	out := &burstOut{}
	s := NewSerial(out, nopLine{})
	for _, b := range []byte("hi") {
		s.Write(uartTHR, []byte{b})
	}
	s.Write(uartIER, []byte{0})
	s.Write(uartLCR, []byte{lcrDLAB})
	s.Write(uartIER, []byte{0}) // DLM
	s.Write(uartLCR, []byte{0})
	if got := strings.Join(out.log, ""); got != "hi|" {
		t.Errorf("output %q, want %q", got, "hi|")
	}
}

func TestSerialInterrupts(t *testing.T) {
	var out bytes.Buffer
	irq := &lineRec{}
	s := NewSerial(&out, irq)
	wr(s, uartMCR, mcrOUT2)
	// Enabling THRI with THR empty interrupts, once the (idle)
	// transmitter reports drained: not inside the guest's write.
	wr(s, uartIER, ierTHRI)
	if n := irq.count(); n != 0 {
		t.Fatalf("%d line changes during the IER write, want none yet", n)
	}
	irq.waitHigh(t)
	if v := rd(s, uartIIR); v&0x0f != iirTHRI {
		t.Fatalf("IIR = %#x, want THRI", v)
	}
	// Reading IIR cleared the THRE interrupt.
	if irq.last() {
		t.Fatal("line still high after IIR read")
	}
	// A burst of bytes is one THRE interrupt, after the last byte.
	n := irq.count()
	for _, c := range []byte("burst of bytes") {
		wr(s, uartTHR, c)
	}
	if got := irq.count() - n; got != 0 {
		t.Fatalf("%d line changes during the burst, want none", got)
	}
	irq.waitHigh(t)
	if got := irq.count() - n; got != 1 {
		t.Fatalf("%d line changes for the burst, want one raise", got)
	}
	if !strings.HasSuffix(out.String(), "burst of bytes") {
		t.Fatalf("output %q", out.String())
	}
	// Writing THR clears a pending THRE interrupt (the line drops).
	wr(s, uartTHR, '!')
	if irq.last() {
		t.Fatal("line still high after a THR write")
	}
	irq.waitHigh(t)
	// Received data has priority and clears when read.
	wr(s, uartIER, ierRDI)
	s.Feed([]byte("k"))
	if v := rd(s, uartIIR); v&0x0f != iirRDI {
		t.Fatalf("IIR = %#x, want RDI", v)
	}
	if rd(s, uartRBR) != 'k' {
		t.Fatal("RBR")
	}
	if irq.last() {
		t.Fatal("line high after the last byte was read")
	}
	// Without OUT2 the line stays low.
	wr(s, uartMCR, 0)
	s.Feed([]byte("z"))
	if irq.last() {
		t.Fatal("raised with OUT2 clear")
	}
}

func TestSerialFeedBackpressure(t *testing.T) {
	s := NewSerial(&bytes.Buffer{}, &lineRec{})
	done := make(chan struct{})
	go func() {
		s.Feed(make([]byte, rxBufferSize+10))
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Feed returned with the buffer overfull")
	case <-time.After(50 * time.Millisecond):
	}
	for i := 0; i < 10; i++ {
		rd(s, uartRBR)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Feed did not resume after the guest read")
	}
}

func TestPowerDevices(t *testing.T) {
	var got []PowerAction
	power := func(a PowerAction) { got = append(got, a) }
	p := NewACPIPM(power)
	p.Write(0, []byte{0x14})        // SLP_TYP 5 without SLP_EN
	p.Write(0, []byte{0x20 | 3<<2}) // SLP_EN with SLP_TYP 3
	p.Write(0, []byte{0x34})        // S5
	p.Write(2, []byte{0x1})         // reset register
	k := NewI8042(power)
	k.Write(i8042CommandOff, []byte{0xd1})
	k.Write(i8042CommandOff, []byte{i8042CmdPulseReset})
	want := []PowerAction{PowerOff, PowerReset, PowerReset}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestCMOSTime(t *testing.T) {
	now := time.Date(2026, 11, 26, 21, 5, 9, 0, time.UTC)
	c := NewCMOS(func() time.Time { return now }, nil)
	read := func(reg byte) byte {
		c.Write(cmosIndexOff, []byte{reg | 0x80}) // NMI-disable bit ignored
		b := []byte{0}
		c.Read(cmosDataOff, b)
		return b[0]
	}
	tests := []struct {
		reg, want byte
	}{
		{rtcSeconds, 0x09}, {rtcMinutes, 0x05}, {rtcHours, 0x21}, {rtcDay, 0x26},
		{rtcMonth, 0x11}, {rtcYear, 0x26}, {RTCCentury, 0x20}, {rtcRegD, 0x80},
	}
	for _, tt := range tests {
		if got := read(tt.reg); got != tt.want {
			t.Errorf("reg %#x = %#x, want %#x", tt.reg, got, tt.want)
		}
	}
	if read(rtcRegA)&0x80 != 0 {
		t.Error("update in progress stuck on")
	}
	c.Write(cmosIndexOff, []byte{0x40})
	c.Write(cmosDataOff, []byte{0x77})
	if read(0x40) != 0x77 {
		t.Error("CMOS RAM")
	}
}
