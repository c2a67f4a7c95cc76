// Command rawrun is the floor BenchmarkStartup measures govm against: a
// process that makes the KVM objects govm makes (a VM with the in-kernel
// interrupt controllers and PIT, one memory slot, one vCPU in real mode)
// with no device model, boot loader or tables, and runs the guest
// "mov al, 7; out 0xf4, al" once. It prints CLOCK_MONOTONIC, in
// nanoseconds, taken just before its first KVM_RUN: what any VMM pays
// from its exec to its guest's first instruction.
package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/kvm"
	"github.com/govm/govm/machine"
	"github.com/govm/govm/mem"
)

const (
	codeAddr = 0x1000
	memSize  = 512 << 20
)

var exit7 = []byte{0xb0, 0x07, 0xe6, 0xf4}

func main() {
	at, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawrun:", err)
		os.Exit(1)
	}
	fmt.Println(at)
}

func run() (int64, error) {
	sys, err := kvm.Open(kvm.DevicePath)
	if err != nil {
		return 0, err
	}
	defer sys.Close()
	vm, err := sys.CreateVM()
	if err != nil {
		return 0, err
	}
	defer vm.Close()
	for _, step := range []func() error{
		func() error { return vm.SetTSSAddr(machine.TSSAddr) },
		func() error { return vm.SetIdentityMapAddr(machine.IdentityMapAddr) },
		vm.CreateIRQChip,
		vm.CreatePIT2,
	} {
		if err := step(); err != nil {
			return 0, err
		}
	}
	m, err := mem.Allocate([]mem.Range{{Base: 0, Size: memSize}}, false)
	if err != nil {
		return 0, err
	}
	defer m.Close()
	if err := m.WriteAt(exit7, codeAddr); err != nil {
		return 0, err
	}
	r := m.Regions()[0]
	if err := vm.SetMemoryRegion(0, r.Base, r.Data); err != nil {
		return 0, err
	}
	v, err := vm.CreateVCPU(0)
	if err != nil {
		return 0, err
	}
	defer v.Close()
	sr, err := v.GetSregs()
	if err != nil {
		return 0, err
	}
	sr.CS.Base, sr.CS.Selector = 0, 0
	if err := v.SetSregs(sr); err != nil {
		return 0, err
	}
	if err := v.SetRegs(kvm.Regs{RIP: codeAddr, RFLAGS: 2}); err != nil {
		return 0, err
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return 0, err
	}
	e, err := v.Run()
	if err != nil {
		return 0, err
	}
	if e.Reason != kvm.ExitIO {
		return 0, fmt.Errorf("guest exited with reason %d, want IO", e.Reason)
	}
	return now.Nano(), nil
}
