package kvm

import "fmt"

// Mirrors of the structures in <linux/kvm.h> and <asm/kvm.h> (x86_64).
// Field order, widths and padding follow the header exactly; sizes are
// checked in kvm_test.go.

// Regs is struct kvm_regs.
type Regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

// Segment is struct kvm_segment.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable is struct kvm_dtable (GDTR/IDTR).
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// numInterrupts is KVM_NR_INTERRUPTS.
const numInterrupts = 256

// Sregs is struct kvm_sregs.
type Sregs struct {
	CS, DS, ES, FS, GS, SS  Segment
	TR, LDT                 Segment
	GDT, IDT                DTable
	CR0, CR2, CR3, CR4, CR8 uint64
	EFER                    uint64
	APICBase                uint64
	InterruptBitmap         [(numInterrupts + 63) / 64]uint64
}

// FPU is struct kvm_fpu.
type FPU struct {
	FPR        [8][16]uint8
	FCW        uint16
	FSW        uint16
	FTWX       uint8
	_          uint8
	LastOpcode uint16
	LastIP     uint64
	LastDP     uint64
	XMM        [16][16]uint8
	MXCSR      uint32
	_          uint32
}

// LAPICState is struct kvm_lapic_state: the 1 KiB local APIC register page.
type LAPICState struct {
	Regs [1024]byte
}

// UserspaceMemoryRegion is struct kvm_userspace_memory_region.
type UserspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

type irqLevel struct {
	IRQ   uint32
	Level uint32
}

type pitConfig struct {
	Flags uint32
	_     [15]uint32
}

type irqfd struct {
	FD         uint32
	GSI        uint32
	Flags      uint32
	ResampleFD uint32
	_          [16]uint8
}

type ioeventfd struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]uint8
}

type enableCap struct {
	Cap   uint32
	Flags uint32
	Args  [4]uint64
	_     [64]uint8
}

type msi struct {
	AddressLo uint32
	AddressHi uint32
	Data      uint32
	Flags     uint32
	DevID     uint32
	_         [12]uint8
}

// CPUIDEntry is struct kvm_cpuid_entry2.
type CPUIDEntry struct {
	Function uint32
	Index    uint32
	Flags    uint32
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	_        [3]uint32
}

// CPUIDFlagSignificantIndex is KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry
// applies only to the sub-leaf in Index.
const CPUIDFlagSignificantIndex = 1

type cpuid2Header struct {
	NEnt uint32
	_    uint32
}

// MSREntry is struct kvm_msr_entry.
type MSREntry struct {
	Index uint32
	_     uint32
	Data  uint64
}

type msrsHeader struct {
	NMSRs uint32
	_     uint32
}

type msrList struct {
	NMSRs uint32
}

// IRQRoutingEntry is struct kvm_irq_routing_entry, with the union laid out as
// the MSI variant (the largest one used) or the irqchip variant.
type IRQRoutingEntry struct {
	GSI   uint32
	Type  uint32
	Flags uint32
	_     uint32
	// U is the union: for KVM_IRQ_ROUTING_IRQCHIP {irqchip, pin}; for
	// KVM_IRQ_ROUTING_MSI {address_lo, address_hi, data, devid}.
	U [8]uint32
}

// Routing entry types (KVM_IRQ_ROUTING_*).
const (
	IRQRoutingIRQChip = 1
	IRQRoutingMSI     = 2
)

type irqRoutingHeader struct {
	NR    uint32
	Flags uint32
}

// VCPUEvents is struct kvm_vcpu_events: exceptions, interrupts and NMIs
// being injected or pending (KVM API 4.31, KVM_GET_VCPU_EVENTS).
type VCPUEvents struct {
	Exception struct {
		Injected, Nr, HasErrorCode, Pending uint8
		ErrorCode                           uint32
	}
	Interrupt struct {
		Injected, Nr, Soft, Shadow uint8
	}
	NMI struct {
		Injected, Pending, Masked, _ uint8
	}
	SIPIVector uint32
	Flags      uint32
	SMI        struct {
		SMM, Pending, SMMInsideNMI, LatchedInit uint8
	}
	TripleFault         struct{ Pending uint8 }
	_                   [26]uint8
	ExceptionHasPayload uint8
	ExceptionPayload    uint64
}

// MPState is a vCPU's multiprocessing state (KVM API 4.38, KVM_MP_STATE_*).
type MPState uint32

// The states x86 reports.
const (
	MPStateRunnable      MPState = 0
	MPStateUninitialized MPState = 1
	MPStateInitReceived  MPState = 2
	MPStateHalted        MPState = 3
	MPStateSIPIReceived  MPState = 4
)

func (s MPState) String() string {
	switch s {
	case MPStateRunnable:
		return "runnable"
	case MPStateUninitialized:
		return "uninitialized"
	case MPStateInitReceived:
		return "init-received"
	case MPStateHalted:
		return "halted"
	case MPStateSIPIReceived:
		return "sipi-received"
	}
	return fmt.Sprintf("mp-state-%d", uint32(s))
}
