package devices

import (
	"io"
	"testing"
	"time"

	"github.com/govm/govm/pci"
)

// FuzzPorts drives every legacy device and the PCI host bridge with any
// sequence of reads and writes, of any width at any offset in their
// ranges: each op is 4 bytes (device, offset, width, value; the device
// byte's top bit makes it a read). The property is that nothing panics.
func FuzzPorts(f *testing.F) {
	f.Add([]byte{0, 3, 1, 0x80, 0, 0, 1, 12, 0, 3, 1, 3, 0, 1, 1, 0x0f, 0, 0, 1, 'A'}) // serial: DLAB, divisor, IER, THR
	f.Add([]byte{1, 0, 1, 0x0a, 1, 1, 1, 0})                                           // CMOS index/data
	f.Add([]byte{7, 0, 4, 0x80, 7, 4, 4, 0, 7, 4, 2, 0xff})                            // PCI config address/data
	f.Add([]byte{2, 4, 1, 0xfe, 3, 0, 1, 1, 4, 0, 1, 7, 5, 0, 1, 123, 6, 0, 2, 0x20})
	f.Fuzz(func(t *testing.T, ops []byte) {
		none := func(PowerAction) {}
		host := pci.NewHost()
		cfg := pci.NewConfig(0x1af4, 0x1042, 1, 0, 0)
		cfg.AddMem64BAR(0, 0x4000, 0xc000_0000)
		cfg.AddCapability(pci.CapMSIX, make([]byte, 10), []byte{0, 0xc0})
		host.Attach(1, cfg)
		devs := []interface {
			Read(uint64, []byte)
			Write(uint64, []byte)
		}{
			NewSerial(io.Discard, nopLine{}),
			NewCMOS(func() time.Time { return time.Unix(0, 0) }, nil), // no timers: the clock stands still
			NewI8042(none),
			NewACPIPM(none),
			NewNotifyPort(func(uint8) {}),
			NewNotifyPort(func(uint8) {}),
			NewPVPanic(func(uint8) {}),
			host,
		}
		var buf [8]byte
		for ; len(ops) >= 4; ops = ops[4:] {
			d := devs[int(ops[0])%len(devs)]
			off := uint64(ops[1] % 16)
			width := 1 + int(ops[2])%8
			data := buf[:width]
			if ops[0]&0x80 != 0 {
				for i := range data {
					data[i] = 0xee
				}
				d.Read(off, data)
				continue
			}
			for i := range data {
				data[i] = ops[3] + byte(i)
			}
			d.Write(off, data)
		}
	})
}

type nopLine struct{}

func (nopLine) SetLevel(bool) {}
