// Package kvm owns the boundary between govm and the Linux KVM API: typed
// bindings for /dev/kvm (System), a VM file descriptor (VM) and a vCPU file
// descriptor (VCPU), the kernel structures they exchange, and the decoding of
// the shared kvm_run page into a typed Exit.
//
// Its unsafe code is in ioctl_unsafe.go (package mem has the only other
// unsafe code, for guest memory). Pointers become uintptr only inside the
// argument list of a raw syscall, and kernel structures are mirrored with
// explicit padding so their sizes match <linux/kvm.h>; ioctl numbers are
// derived from those sizes with the _IOC encoding and checked against the
// header's values by a table test.
package kvm

// The asm-generic _IOC encoding (include/uapi/asm-generic/ioctl.h):
// dir in bits 30-31, size in 16-29, type in 8-15, number in 0-7.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	iocNRShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30

	// kvmio is KVMIO, the ioctl type byte of every KVM request.
	kvmio = 0xAE
)

func ioc(dir, nr, size uintptr) uintptr {
	return dir<<iocDirShift | kvmio<<iocTypeShift | nr<<iocNRShift | size<<iocSizeShift
}

func io(nr uintptr) uintptr           { return ioc(iocNone, nr, 0) }
func ior(nr, size uintptr) uintptr    { return ioc(iocRead, nr, size) }
func iow(nr, size uintptr) uintptr    { return ioc(iocWrite, nr, size) }
func iowr(nr, size uintptr) uintptr   { return ioc(iocRead|iocWrite, nr, size) }
func iowT[T any](nr uintptr) uintptr  { return iow(nr, sizeOf[T]()) }
func iorT[T any](nr uintptr) uintptr  { return ior(nr, sizeOf[T]()) }
func iowrT[T any](nr uintptr) uintptr { return iowr(nr, sizeOf[T]()) }

// Request numbers, named as in <linux/kvm.h>.
var (
	reqGetAPIVersion       = io(0x00)
	reqCreateVM            = io(0x01)
	reqGetMSRIndexList     = iowrT[msrList](0x02)
	reqCheckExtension      = io(0x03)
	reqGetVCPUMmapSize     = io(0x04)
	reqGetSupportedCPUID   = iowrT[cpuid2Header](0x05)
	reqCreateVCPU          = io(0x41)
	reqSetUserMemoryRegion = iowT[UserspaceMemoryRegion](0x46)
	reqSetTSSAddr          = io(0x47)
	reqSetIdentityMapAddr  = iowT[uint64](0x48)
	reqCreateIRQChip       = io(0x60)
	reqIRQLine             = iowT[irqLevel](0x61)
	reqSetGSIRouting       = iowT[irqRoutingHeader](0x6a)
	reqIRQFD               = iowT[irqfd](0x76)
	reqCreatePIT2          = iowT[pitConfig](0x77)
	reqIOEventFD           = iowT[ioeventfd](0x79)
	reqRun                 = io(0x80)
	reqGetRegs             = iorT[Regs](0x81)
	reqSetRegs             = iowT[Regs](0x82)
	reqGetSregs            = iorT[Sregs](0x83)
	reqSetSregs            = iowT[Sregs](0x84)
	reqGetMSRs             = iowrT[msrsHeader](0x88)
	reqSetMSRs             = iowT[msrsHeader](0x89)
	reqSetFPU              = iowT[FPU](0x8d)
	reqGetLAPIC            = iorT[LAPICState](0x8e)
	reqSetLAPIC            = iowT[LAPICState](0x8f)
	reqSetCPUID2           = iowT[cpuid2Header](0x90)
	reqGetMPState          = iorT[uint32](0x98)
	reqGetVCPUEvents       = iorT[VCPUEvents](0x9f)
	reqEnableCap           = iowT[enableCap](0xa3)
	reqSignalMSI           = iowT[msi](0xa5)
)

// Request is an ioctl request number and its name in <linux/kvm.h>.
type Request struct {
	Name string
	Num  uintptr
}

// RunningRequests are the requests govm issues once its VM is built: the
// vCPU loop and its diagnostics, interrupts and their routes, and the
// eventfds the guest's drivers cause to be registered as they enable
// queues. A seccomp filter installed after setup allows these and no
// other KVM request (creating VMs, vCPUs or memory slots among them).
func RunningRequests() []Request {
	return []Request{
		{"KVM_RUN", reqRun},
		{"KVM_GET_REGS", reqGetRegs},
		{"KVM_GET_SREGS", reqGetSregs},
		{"KVM_GET_MSRS", reqGetMSRs},
		{"KVM_GET_LAPIC", reqGetLAPIC},
		{"KVM_GET_MP_STATE", reqGetMPState},
		{"KVM_GET_VCPU_EVENTS", reqGetVCPUEvents},
		{"KVM_IRQ_LINE", reqIRQLine},
		{"KVM_SIGNAL_MSI", reqSignalMSI},
		{"KVM_SET_GSI_ROUTING", reqSetGSIRouting},
		{"KVM_IRQFD", reqIRQFD},
		{"KVM_IOEVENTFD", reqIOEventFD},
	}
}
