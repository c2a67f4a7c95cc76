package kvm

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"unsafe"
)

// Values printed by a C program including <linux/kvm.h> from Debian's
// linux-libc-dev (6.1), x86_64.
func TestIoctlNumbers(t *testing.T) {
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"KVM_GET_API_VERSION", reqGetAPIVersion, 0xae00},
		{"KVM_CREATE_VM", reqCreateVM, 0xae01},
		{"KVM_GET_MSR_INDEX_LIST", reqGetMSRIndexList, 0xc004ae02},
		{"KVM_CHECK_EXTENSION", reqCheckExtension, 0xae03},
		{"KVM_GET_VCPU_MMAP_SIZE", reqGetVCPUMmapSize, 0xae04},
		{"KVM_GET_SUPPORTED_CPUID", reqGetSupportedCPUID, 0xc008ae05},
		{"KVM_CREATE_VCPU", reqCreateVCPU, 0xae41},
		{"KVM_SET_USER_MEMORY_REGION", reqSetUserMemoryRegion, 0x4020ae46},
		{"KVM_SET_TSS_ADDR", reqSetTSSAddr, 0xae47},
		{"KVM_SET_IDENTITY_MAP_ADDR", reqSetIdentityMapAddr, 0x4008ae48},
		{"KVM_CREATE_IRQCHIP", reqCreateIRQChip, 0xae60},
		{"KVM_IRQ_LINE", reqIRQLine, 0x4008ae61},
		{"KVM_SET_GSI_ROUTING", reqSetGSIRouting, 0x4008ae6a},
		{"KVM_IRQFD", reqIRQFD, 0x4020ae76},
		{"KVM_CREATE_PIT2", reqCreatePIT2, 0x4040ae77},
		{"KVM_IOEVENTFD", reqIOEventFD, 0x4040ae79},
		{"KVM_RUN", reqRun, 0xae80},
		{"KVM_GET_REGS", reqGetRegs, 0x8090ae81},
		{"KVM_SET_REGS", reqSetRegs, 0x4090ae82},
		{"KVM_GET_SREGS", reqGetSregs, 0x8138ae83},
		{"KVM_SET_SREGS", reqSetSregs, 0x4138ae84},
		{"KVM_GET_MSRS", reqGetMSRs, 0xc008ae88},
		{"KVM_SET_MSRS", reqSetMSRs, 0x4008ae89},
		{"KVM_SET_FPU", reqSetFPU, 0x41a0ae8d},
		{"KVM_GET_LAPIC", reqGetLAPIC, 0x8400ae8e},
		{"KVM_SET_LAPIC", reqSetLAPIC, 0x4400ae8f},
		{"KVM_SET_CPUID2", reqSetCPUID2, 0x4008ae90},
		{"KVM_GET_MP_STATE", reqGetMPState, 0x8004ae98},
		{"KVM_GET_VCPU_EVENTS", reqGetVCPUEvents, 0x8040ae9f},
		{"KVM_ENABLE_CAP", reqEnableCap, 0x4068aea3},
		{"KVM_SIGNAL_MSI", reqSignalMSI, 0x4020aea5},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
}

func TestStructSizes(t *testing.T) {
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), 312},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_dtable", unsafe.Sizeof(DTable{}), 16},
		{"kvm_fpu", unsafe.Sizeof(FPU{}), 416},
		{"kvm_lapic_state", unsafe.Sizeof(LAPICState{}), 1024},
		{"kvm_userspace_memory_region", unsafe.Sizeof(UserspaceMemoryRegion{}), 32},
		{"kvm_pit_config", unsafe.Sizeof(pitConfig{}), 64},
		{"kvm_ioeventfd", unsafe.Sizeof(ioeventfd{}), 64},
		{"kvm_irqfd", unsafe.Sizeof(irqfd{}), 32},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry{}), 40},
		{"kvm_msr_entry", unsafe.Sizeof(MSREntry{}), 16},
		{"kvm_irq_routing_entry", unsafe.Sizeof(IRQRoutingEntry{}), 48},
		{"kvm_enable_cap", unsafe.Sizeof(enableCap{}), 104},
		{"kvm_msi", unsafe.Sizeof(msi{}), 32},
		{"kvm_vcpu_events", unsafe.Sizeof(VCPUEvents{}), 64},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("sizeof(%s) = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}

// runArea is the size of a real mapping: the run page, the PIO data page and
// the coalesced-MMIO ring page.
func runArea() []byte { return make([]byte, 3*4096) }

func TestDecodeExit(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name    string
		fill    func(r []byte)
		want    Exit
		dataOff int
		wantErr bool
	}{
		{
			name: "out byte to COM1",
			fill: func(r []byte) {
				le.PutUint32(r[runExitReason:], uint32(ExitIO))
				r[runIODirection] = ioDirectionOut
				r[runIOSize] = 1
				le.PutUint16(r[runIOPort:], 0x3f8)
				le.PutUint32(r[runIOCount:], 1)
				le.PutUint64(r[runIODataOffset:], 4096)
			},
			want:    Exit{Reason: ExitIO, Port: 0x3f8, Size: 1, Count: 1, Write: true},
			dataOff: 4096,
		},
		{
			name: "rep insw of 3",
			fill: func(r []byte) {
				le.PutUint32(r[runExitReason:], uint32(ExitIO))
				r[runIOSize] = 2
				le.PutUint16(r[runIOPort:], 0x1f0)
				le.PutUint32(r[runIOCount:], 3)
				le.PutUint64(r[runIODataOffset:], 100)
			},
			want:    Exit{Reason: ExitIO, Port: 0x1f0, Size: 2, Count: 3},
			dataOff: 100,
		},
		{
			name: "io data past the run area",
			fill: func(r []byte) {
				le.PutUint32(r[runExitReason:], uint32(ExitIO))
				r[runIOSize] = 4
				le.PutUint32(r[runIOCount:], 2)
				le.PutUint64(r[runIODataOffset:], 3*4096-4)
			},
			wantErr: true,
		},
		{
			name: "io offset wraps",
			fill: func(r []byte) {
				le.PutUint32(r[runExitReason:], uint32(ExitIO))
				r[runIOSize] = 1
				le.PutUint32(r[runIOCount:], 1)
				le.PutUint64(r[runIODataOffset:], ^uint64(0))
			},
			wantErr: true,
		},
		{
			name: "mmio write of 4",
			fill: func(r []byte) {
				le.PutUint32(r[runExitReason:], uint32(ExitMMIO))
				le.PutUint64(r[runMMIOAddr:], 0xd0000000)
				le.PutUint32(r[runMMIOLen:], 4)
				r[runMMIOIsWrite] = 1
			},
			want:    Exit{Reason: ExitMMIO, Addr: 0xd0000000, Size: 4, Count: 1, Write: true},
			dataOff: runMMIOData,
		},
		{
			name: "mmio length 9",
			fill: func(r []byte) {
				le.PutUint32(r[runExitReason:], uint32(ExitMMIO))
				le.PutUint32(r[runMMIOLen:], 9)
			},
			wantErr: true,
		},
		{
			name: "system event reset",
			fill: func(r []byte) {
				le.PutUint32(r[runExitReason:], uint32(ExitSystemEvent))
				le.PutUint32(r[runSystemEventType:], SystemEventReset)
			},
			want: Exit{Reason: ExitSystemEvent, EventType: SystemEventReset},
		},
		{
			name: "internal error",
			fill: func(r []byte) {
				le.PutUint32(r[runExitReason:], uint32(ExitInternalError))
				le.PutUint32(r[runInternalSuberror:], 1)
			},
			want: Exit{Reason: ExitInternalError, Suberror: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runArea()
			tt.fill(r)
			got, err := DecodeExit(r)
			if tt.wantErr {
				if !errors.Is(err, ErrBadExit) {
					t.Fatalf("err = %v, want ErrBadExit", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			data := got.Data
			got.Data = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if n := int(tt.want.Size) * int(tt.want.Count); len(data) != n {
				t.Fatalf("len(Data) = %d, want %d", len(data), n)
			}
			if len(data) > 0 {
				data[0] = 0x5a // must alias the run area
				if r[tt.dataOff] != 0x5a {
					t.Fatalf("Data does not alias the run area at offset %d", tt.dataOff)
				}
			}
		})
	}
}

func TestDecodeExitShortArea(t *testing.T) {
	if _, err := DecodeExit(make([]byte, 16)); !errors.Is(err, ErrBadExit) {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkDecodeExit(b *testing.B) {
	r := runArea()
	binary.LittleEndian.PutUint32(r[runExitReason:], uint32(ExitIO))
	r[runIODirection] = ioDirectionOut
	r[runIOSize] = 1
	binary.LittleEndian.PutUint32(r[runIOCount:], 1)
	binary.LittleEndian.PutUint64(r[runIODataOffset:], 4096)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeExit(r); err != nil {
			b.Fatal(err)
		}
	}
}
