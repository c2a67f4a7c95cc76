package kvm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// VM is a KVM virtual machine file descriptor.
type VM struct {
	fd       int
	mmapSize int
}

// Close closes the VM descriptor.
func (vm *VM) Close() error { return unix.Close(vm.fd) }

// SetMemoryRegion maps host memory (which must come from mmap, not the Go
// heap) at guest physical address gpa in memory slot slot.
func (vm *VM) SetMemoryRegion(slot uint32, gpa uint64, host []byte) error {
	if len(host) == 0 {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d: empty region", slot)
	}
	r := UserspaceMemoryRegion{
		Slot:          slot,
		GuestPhysAddr: gpa,
		MemorySize:    uint64(len(host)),
		UserspaceAddr: hostAddr(host),
	}
	if _, err := ioctlPtr(vm.fd, reqSetUserMemoryRegion, &r); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d at %#x: %w", slot, gpa, err)
	}
	return nil
}

// SetTSSAddr places the three pages KVM needs for real-mode emulation on
// Intel hosts.
func (vm *VM) SetTSSAddr(gpa uint64) error {
	if _, err := ioctlVal(vm.fd, reqSetTSSAddr, uintptr(gpa)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR: %w", err)
	}
	return nil
}

// SetIdentityMapAddr places KVM's identity-map page (Intel, unrestricted
// guest off).
func (vm *VM) SetIdentityMapAddr(gpa uint64) error {
	if _, err := ioctlPtr(vm.fd, reqSetIdentityMapAddr, &gpa); err != nil {
		return fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR: %w", err)
	}
	return nil
}

// CreateIRQChip creates the in-kernel PIC, IOAPIC and local APICs.
func (vm *VM) CreateIRQChip() error {
	if _, err := ioctlVal(vm.fd, reqCreateIRQChip, 0); err != nil {
		return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	return nil
}

// pitSpeakerDummy is KVM_PIT_SPEAKER_DUMMY: port 0x61 is emulated in-kernel.
const pitSpeakerDummy = 1

// CreatePIT2 creates the in-kernel i8254 timer.
func (vm *VM) CreatePIT2() error {
	cfg := pitConfig{Flags: pitSpeakerDummy}
	if _, err := ioctlPtr(vm.fd, reqCreatePIT2, &cfg); err != nil {
		return fmt.Errorf("KVM_CREATE_PIT2: %w", err)
	}
	return nil
}

// IRQLine sets the level of interrupt line (GSI) irq.
func (vm *VM) IRQLine(irq uint32, level bool) error {
	l := irqLevel{IRQ: irq}
	if level {
		l.Level = 1
	}
	if _, err := ioctlPtr(vm.fd, reqIRQLine, &l); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE %d: %w", irq, err)
	}
	return nil
}

// ioeventfd flags (KVM_IOEVENTFD_FLAG_*).
const (
	ioeventfdFlagDatamatch = 1 << 0
	ioeventfdFlagPIO       = 1 << 1
	ioeventfdFlagDeassign  = 1 << 2
)

// IOEventFD asks KVM to signal eventfd fd when the guest writes len bytes
// at addr (a port if pio, else an MMIO address), instead of exiting to
// userspace. With match set, only writes of value data signal it.
func (vm *VM) IOEventFD(fd int, addr uint64, length uint32, pio bool, match bool, data uint64, deassign bool) error {
	e := ioeventfd{Addr: addr, Len: length, FD: int32(fd), Datamatch: data}
	if pio {
		e.Flags |= ioeventfdFlagPIO
	}
	if match {
		e.Flags |= ioeventfdFlagDatamatch
	}
	if deassign {
		e.Flags |= ioeventfdFlagDeassign
	}
	if _, err := ioctlPtr(vm.fd, reqIOEventFD, &e); err != nil {
		return fmt.Errorf("KVM_IOEVENTFD at %#x: %w", addr, err)
	}
	return nil
}

// irqfdFlagDeassign is KVM_IRQFD_FLAG_DEASSIGN.
const irqfdFlagDeassign = 1 << 0

// IRQFD makes a write to eventfd fd inject GSI gsi.
func (vm *VM) IRQFD(fd int, gsi uint32, deassign bool) error {
	e := irqfd{FD: uint32(fd), GSI: gsi}
	if deassign {
		e.Flags = irqfdFlagDeassign
	}
	if _, err := ioctlPtr(vm.fd, reqIRQFD, &e); err != nil {
		return fmt.Errorf("KVM_IRQFD gsi %d: %w", gsi, err)
	}
	return nil
}

// SetGSIRouting replaces the whole GSI routing table.
func (vm *VM) SetGSIRouting(entries []IRQRoutingEntry) error {
	hdr := irqRoutingHeader{NR: uint32(len(entries))}
	if _, err := ioctlBuf(vm.fd, reqSetGSIRouting, packFlex(&hdr, entries, len(entries))); err != nil {
		return fmt.Errorf("KVM_SET_GSI_ROUTING (%d entries): %w", len(entries), err)
	}
	return nil
}

// SignalMSI injects one MSI.
func (vm *VM) SignalMSI(addr uint64, data uint32) error {
	m := msi{AddressLo: uint32(addr), AddressHi: uint32(addr >> 32), Data: data}
	if _, err := ioctlPtr(vm.fd, reqSignalMSI, &m); err != nil {
		return fmt.Errorf("KVM_SIGNAL_MSI: %w", err)
	}
	return nil
}

// CreateVCPU creates vCPU id and maps its run area.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := ioctlVal(vm.fd, reqCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	unix.CloseOnExec(fd)
	run, err := unix.Mmap(fd, 0, vm.mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mmap vCPU %d run area: %w", id, err)
	}
	return &VCPU{fd: fd, id: id, run: run}, nil
}
