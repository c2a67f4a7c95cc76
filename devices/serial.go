// Package devices holds govm's small legacy devices, one file each: the
// 8250/16550A UART, the i8042 (reset line only), the CMOS RTC, the PCI host
// bridge's configuration ports and the ACPI sleep/reset registers. A device
// sees only offsets into its own range and the byte slice of one access; it
// raises interrupts through a Line and asks for VM power actions through a
// callback, so it knows nothing of KVM, buses or IRQ numbers.
package devices

import (
	"io"
	"sync"
	"time"
)

// Line is an interrupt line a device drives. For the ISA devices here it is
// an edge-triggered IOAPIC/PIC input: a raise after a lower is one interrupt.
type Line interface {
	SetLevel(high bool)
}

// 8250/16550A register offsets and bits (National Semiconductor PC16550D
// data sheet; Linux include/uapi/linux/serial_reg.h).
const (
	uartRBR = 0 // receive buffer (read, DLAB=0)
	uartTHR = 0 // transmit holding (write, DLAB=0)
	uartDLL = 0 // divisor latch low (DLAB=1)
	uartIER = 1 // interrupt enable (DLAB=0)
	uartDLM = 1 // divisor latch high (DLAB=1)
	uartIIR = 2 // interrupt identification (read)
	uartFCR = 2 // FIFO control (write)
	uartLCR = 3
	uartMCR = 4
	uartLSR = 5
	uartMSR = 6
	uartSCR = 7

	// UARTPorts is the size of the register block.
	UARTPorts = 8

	ierRDI  = 0x01 // received data available
	ierTHRI = 0x02 // transmitter holding register empty
	ierRLSI = 0x04 // receiver line status
	ierMSI  = 0x08 // modem status
	ierMask = 0x0f

	iirNoInt  = 0x01
	iirMSI    = 0x00
	iirTHRI   = 0x02
	iirRDI    = 0x04
	iirFIFOOn = 0xc0 // both FIFO-enabled bits of a 16550A

	fcrEnable   = 0x01
	fcrClearRcv = 0x02

	lcrDLAB = 0x80

	mcrDTR  = 0x01
	mcrRTS  = 0x02
	mcrOUT1 = 0x04
	mcrOUT2 = 0x08
	mcrLoop = 0x10
	mcrMask = 0x1f

	lsrDR   = 0x01
	lsrTHRE = 0x20
	lsrTEMT = 0x40

	msrCTS = 0x10
	msrDSR = 0x20
	msrRI  = 0x40
	msrDCD = 0x80

	// rxBufferSize bounds the bytes queued for the guest; a writer beyond
	// it blocks in Feed until the guest reads (back-pressure, no loss).
	rxBufferSize = 1024
)

// COM1 is the conventional first serial port.
const (
	COM1Port = 0x3f8
	COM1IRQ  = 4
)

// txDrainDelay is how long after the guest's last write to THR the
// transmitter reports itself empty with the THRE interrupt.
//
// Bytes leave at once (LSR always shows THR empty, so a polling writer
// never waits), but the interrupt comes as a 16550's does when its FIFO
// has drained: once per burst, after it, rather than once per byte while
// the guest is still writing. Linux's driver writes a burst with the port
// lock held and interrupts off; an interrupt raised inside that section
// can only wait for it to end. One per burst is 16 times fewer interrupts,
// and it arrives when the guest can take it.
const txDrainDelay = 200 * time.Microsecond

// BurstEnder is an output that wants to know when the guest has finished
// a burst of output. Linux's 8250 driver ends every burst with a write to
// IER: its console restores IER after each message it polls out, and its
// tty path turns THRI off when its buffer is empty. A batching output can
// write what it holds then, in the vCPU's thread, instead of waiting on a
// timer that wakes another thread.
type BurstEnder interface {
	EndBurst()
}

// Serial is a 16550A UART. Output bytes go straight to Out; input is fed
// with Feed.
type Serial struct {
	mu    sync.Mutex
	out   io.Writer
	irq   Line
	level bool

	ier, lcr, mcr, scr, dll, dlm uint8
	fcr                          uint8
	thrPending                   bool // THR-empty interrupt armed, not yet seen
	txBuf                        [1]byte

	// The transmitter drains txDrainDelay after the last THR write (or
	// after THRI is enabled); txTimer is armed while it is "busy".
	txTimer *time.Timer
	txDue   time.Time
	txArmed bool // txTimer will fire: another write only moves txDue

	rx     []byte
	rxCond *sync.Cond
	closed bool

	txBytes uint64
}

// TxBytes counts bytes the guest transmitted.
func (s *Serial) TxBytes() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txBytes
}

// NewSerial returns a UART writing guest output to out and raising irq.
func NewSerial(out io.Writer, irq Line) *Serial {
	s := &Serial{out: out, irq: irq, dll: 12 /* 9600 baud */}
	s.rxCond = sync.NewCond(&s.mu)
	return s
}

// Feed queues input bytes for the guest. It blocks while the receive buffer
// is full and returns early (dropping the rest) only after Close.
func (s *Serial) Feed(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(p) > 0 && !s.closed {
		for len(s.rx) >= rxBufferSize && !s.closed {
			s.rxCond.Wait()
		}
		n := min(len(p), rxBufferSize-len(s.rx))
		s.rx = append(s.rx, p[:n]...)
		p = p[n:]
		s.updateIRQ()
	}
}

// Close wakes a blocked Feed for good and stops the transmitter.
func (s *Serial) Close() {
	s.mu.Lock()
	s.closed = true
	s.rxCond.Broadcast()
	if s.txTimer != nil {
		s.txTimer.Stop()
	}
	s.mu.Unlock()
}

// startTx marks the transmitter busy until txDrainDelay from now; a busy
// one's deadline moves on.
func (s *Serial) startTx() {
	s.txDue = time.Now().Add(txDrainDelay)
	if s.txArmed {
		return // txDrained finds the new deadline and waits it out
	}
	s.txArmed = true
	if s.txTimer == nil {
		s.txTimer = time.AfterFunc(txDrainDelay, s.txDrained)
		return
	}
	s.txTimer.Reset(txDrainDelay)
}

// txDrained runs when the transmitter's deadline may have passed: it
// raises THRE if THRI is enabled, or waits out a deadline a later write
// moved.
func (s *Serial) txDrained() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if left := time.Until(s.txDue); left > 0 {
		s.txTimer.Reset(left)
		return
	}
	s.txArmed = false
	if s.ier&ierTHRI != 0 {
		s.thrPending = true
		s.updateIRQ()
	}
}

// iir returns the highest-priority pending interrupt.
func (s *Serial) iir() uint8 {
	fifo := uint8(0)
	if s.fcr&fcrEnable != 0 {
		fifo = iirFIFOOn
	}
	switch {
	case s.ier&ierRDI != 0 && len(s.rx) > 0:
		return fifo | iirRDI
	case s.ier&ierTHRI != 0 && s.thrPending:
		return fifo | iirTHRI
	}
	return fifo | iirNoInt
}

// updateIRQ drives the line from the pending state. OUT2 gates the line
// to the interrupt controller on PC hardware.
func (s *Serial) updateIRQ() {
	level := s.iir()&iirNoInt == 0 && s.mcr&mcrOUT2 != 0
	if level != s.level {
		s.level = level
		s.irq.SetLevel(level)
	}
}

// Read serves a guest read of register off.
func (s *Serial) Read(off uint64, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range data {
		data[i] = s.readReg(off + uint64(i))
	}
	s.updateIRQ()
}

func (s *Serial) readReg(off uint64) uint8 {
	switch off {
	case uartRBR:
		if s.lcr&lcrDLAB != 0 {
			return s.dll
		}
		if len(s.rx) == 0 {
			return 0
		}
		b := s.rx[0]
		s.rx = s.rx[1:]
		if len(s.rx) == 0 {
			s.rx = s.rx[:0:0]
		}
		s.rxCond.Broadcast()
		return b
	case uartIER:
		if s.lcr&lcrDLAB != 0 {
			return s.dlm
		}
		return s.ier
	case uartIIR:
		v := s.iir()
		if v&0x0f == iirTHRI {
			s.thrPending = false // reading IIR clears a THRE interrupt
		}
		return v
	case uartLCR:
		return s.lcr
	case uartMCR:
		return s.mcr
	case uartLSR:
		v := uint8(lsrTHRE | lsrTEMT)
		if len(s.rx) > 0 {
			v |= lsrDR
		}
		return v
	case uartMSR:
		if s.mcr&mcrLoop != 0 {
			// Loopback: modem outputs wire to modem inputs.
			var v uint8
			if s.mcr&mcrRTS != 0 {
				v |= msrCTS
			}
			if s.mcr&mcrDTR != 0 {
				v |= msrDSR
			}
			if s.mcr&mcrOUT1 != 0 {
				v |= msrRI
			}
			if s.mcr&mcrOUT2 != 0 {
				v |= msrDCD
			}
			return v
		}
		return msrDCD | msrDSR | msrCTS
	case uartSCR:
		return s.scr
	}
	return 0xff
}

// Write serves a guest write of register off.
func (s *Serial) Write(off uint64, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range data {
		s.writeReg(off+uint64(i), b)
	}
	s.updateIRQ()
}

func (s *Serial) writeReg(off uint64, b uint8) {
	switch off {
	case uartTHR:
		if s.lcr&lcrDLAB != 0 {
			s.dll = b
			return
		}
		if s.mcr&mcrLoop != 0 {
			if len(s.rx) < rxBufferSize {
				s.rx = append(s.rx, b)
			}
		} else {
			s.txBytes++
			s.txBuf[0] = b
			_, _ = s.out.Write(s.txBuf[:])
		}
		// Writing THR clears a THRE interrupt (16550 datasheet, IIR
		// table); the next comes when the burst has drained. Without
		// THRI nothing waits for the drain (Linux's console writes poll
		// LSR with IER clear), so no timer runs: where each byte's exit
		// takes longer than txDrainDelay (nested under an emulator) a
		// timer would otherwise fire once per byte of the boot log.
		s.thrPending = false
		if s.ier&ierTHRI != 0 {
			s.startTx()
		}
	case uartIER:
		if s.lcr&lcrDLAB != 0 {
			s.dlm = b
			return
		}
		old := s.ier
		s.ier = b & ierMask
		if e, ok := s.out.(BurstEnder); ok {
			e.EndBurst()
		}
		if s.ier&ierTHRI != 0 && old&ierTHRI == 0 {
			s.startTx() // enabling THRI with THR empty interrupts, once drained
		}
		if s.ier&ierTHRI == 0 {
			s.thrPending = false
		}
	case uartFCR:
		s.fcr = b
		if b&fcrClearRcv != 0 {
			s.rx = s.rx[:0]
			s.rxCond.Broadcast()
		}
	case uartLCR:
		s.lcr = b
	case uartMCR:
		s.mcr = b & mcrMask
	case uartSCR:
		s.scr = b
	}
}
