package machine

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/govm/govm/bus"
	"github.com/govm/govm/kvm"
)

// Exit round trips on this host's /dev/kvm: a tiny guest that does nothing
// but PIO (or MMIO) writes in a loop, served two ways side by side:
//
//   - raw: KVM_RUN in a loop on a locked thread, nothing else (the floor
//     any VMM pays for the exit itself);
//   - govm: the machine's vCPU loop, which counts the exit, decodes it and
//     dispatches it on the bus to a device.
//
// The ratio govm/raw is what govm adds per exit (issue #6's goal: at most
// 1.10).
var (
	// out dx, al to testPort forever.
	guestPIOLoop = []byte{
		0xba, 0x10, 0x05, // mov dx, 0x510
		0xee,       // l: out dx, al
		0xeb, 0xfd, // jmp l
	}
	// mov byte [es:0], al to testMMIOBase forever.
	guestMMIOLoop = []byte{
		0xb8, 0x00, 0x20, // mov ax, 0x2000
		0x8e, 0xc0, // mov es, ax
		0x26, 0xa2, 0x00, 0x00, // l: mov [es:0], al
		0xeb, 0xfa, // jmp l
	}
)

// countingDevice ends the run after n writes.
type countingDevice struct {
	n, target int64
	stop      context.CancelCauseFunc
}

var errEnough = errors.New("enough exits")

func (d *countingDevice) Read(uint64, []byte) {}
func (d *countingDevice) Write(uint64, []byte) {
	if atomic.AddInt64(&d.n, 1) == d.target {
		d.stop(errEnough)
	}
}

func BenchmarkExitRoundTrip(b *testing.B) {
	for _, c := range []struct {
		name   string
		code   []byte
		reason kvm.ExitReason
	}{{"pio", guestPIOLoop, kvm.ExitIO}, {"mmio", guestMMIOLoop, kvm.ExitMMIO}} {
		b.Run(c.name+"/raw", func(b *testing.B) {
			m := benchMachine(b, c.code, nil)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			v := m.vcpus[0].kvm
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				e, err := v.Run()
				if errors.Is(err, kvm.ErrInterrupted) {
					continue // Go's preemption signal, as in the vCPU loop
				}
				i++
				if err != nil || e.Reason != c.reason {
					b.Fatalf("exit %d, %v; want %d", e.Reason, err, c.reason)
				}
			}
		})
		b.Run(c.name+"/govm", func(b *testing.B) {
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			dev := &countingDevice{target: int64(b.N), stop: cancel}
			m := benchMachine(b, c.code, dev)
			b.ReportAllocs()
			b.ResetTimer()
			res := m.Run(ctx)
			b.StopTimer()
			if res.Reason != StopCanceled || !errors.Is(context.Cause(ctx), errEnough) {
				b.Fatalf("stopped with %v (%s) after %d exits", res.Reason, res.Detail, dev.n)
			}
		})
	}
}

func benchMachine(b *testing.B, code []byte, dev bus.Device) *Machine {
	b.Helper()
	return tinyMachine(b, code, 1, &bytes.Buffer{}, dev, dev)
}
