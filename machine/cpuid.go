package machine

import "github.com/govm/govm/kvm"

// CPUID leaves and bits govm adjusts (SDM vol. 2A, CPUID).
const (
	cpuidFeatures     = 0x1
	cpuidExtFeatures  = 0x7
	cpuidXSave        = 0xd
	cpuidKVMFeatures  = 0x40000001
	cpuidExtTopology  = 0xb
	cpuidExtTopology2 = 0x1f

	leaf1EBXAPICIDShift = 24
	leaf1EBXCountShift  = 16
	leaf1EBXCountMask   = 0xff << leaf1EBXCountShift
	leaf1EBXAPICIDMask  = 0xff << leaf1EBXAPICIDShift
	leaf1ECXHypervisor  = 1 << 31
	leaf1ECXTSCDeadline = 1 << 24 // the APIC timer's TSC-deadline mode
	leaf1EDXHTT         = 1 << 28

	// KVM paravirtual features kept (Documentation/virt/kvm/x86/cpuid.rst):
	// the clock sources, no-op port 0x80 delays and the stable-clock bit.
	kvmFeatureClocksource  = 1 << 0
	kvmFeatureNopIODelay   = 1 << 1
	kvmFeatureClocksource2 = 1 << 3
	kvmFeatureStableBit    = 1 << 24
	kvmFeaturesKept        = kvmFeatureClocksource | kvmFeatureNopIODelay | kvmFeatureClocksource2 | kvmFeatureStableBit

	leaf7ECXPKU   = 1 << 3 // protection keys for user pages
	leaf7ECXOSPKE = 1 << 4

	xsaveFeaturePKRU = 9      // XCR0 bit and leaf 0xD sub-leaf of PKRU state
	leafDSub1XSAVEC  = 1 << 1 // compacted XSAVE
	leafDSub1XSAVES  = 1 << 3 // supervisor XSAVE
)

// XSAVE-managed features hidden when the guest cannot have XSAVE (SDM
// vol. 2A, CPUID leaves 1 and 7).
const (
	leaf1ECXFMA     = 1 << 12
	leaf1ECXXSAVE   = 1 << 26
	leaf1ECXOSXSAVE = 1 << 27
	leaf1ECXAVX     = 1 << 28
	leaf1ECXF16C    = 1 << 29
	leaf7EBXAVX2    = 1 << 5
	leaf7EBXAVX512  = 1<<16 | 1<<17 | 1<<21 | 1<<26 | 1<<27 | 1<<28 | 1<<30 | 1<<31
	leaf7ECXAVX512  = 1<<1 | 1<<6 | 1<<8 | 1<<9 | 1<<10 | 1<<11 | 1<<12 | 1<<14
	leaf7EDXAVX512  = 1<<2 | 1<<3 | 1<<8 | 1<<23
)

// hideXSave removes XSAVE and every feature whose state it manages, so the
// guest keeps only x87/SSE state (saved with FXSAVE). It is for KVM nested
// under an emulator: there KVM does not see the guest's XSETBV and reports
// a stale XSAVE area size, and the guest kernel then corrupts memory.
func hideXSave(entries []kvm.CPUIDEntry) []kvm.CPUIDEntry {
	out := entries[:0]
	for _, e := range entries {
		switch e.Function {
		case cpuidFeatures:
			e.ECX &^= leaf1ECXXSAVE | leaf1ECXOSXSAVE | leaf1ECXAVX | leaf1ECXFMA | leaf1ECXF16C
		case cpuidExtFeatures:
			if e.Index == 0 {
				e.EBX &^= leaf7EBXAVX2 | leaf7EBXAVX512
				e.ECX &^= leaf7ECXAVX512
				e.EDX &^= leaf7EDXAVX512
			}
		case cpuidXSave:
			continue
		}
		out = append(out, e)
	}
	return out
}

// cpuidOptions are what the CPUID table offers beyond KVM's supported
// leaves, or hides from them.
type cpuidOptions struct {
	noXSave bool // hide XSAVE and the state it manages (see hideXSave)
	// tscDeadline offers the APIC timer's TSC-deadline mode, which KVM
	// emulates when it has KVM_CAP_TSC_DEADLINE_TIMER but leaves out of
	// KVM_GET_SUPPORTED_CPUID. Without it Linux programs its timer by the
	// APIC's count-down register and calibrates that against another
	// clock at boot; QEMU, Firecracker and Cloud Hypervisor offer it.
	tscDeadline bool
}

// vcpuCPUID returns the CPUID table for vCPU id of n: the host's supported
// leaves with this vCPU's APIC ID, the logical processor count and the
// hypervisor bit.
func vcpuCPUID(supported []kvm.CPUIDEntry, id, n int, opt cpuidOptions) []kvm.CPUIDEntry {
	out := make([]kvm.CPUIDEntry, len(supported))
	copy(out, supported)
	for i := range out {
		e := &out[i]
		switch e.Function {
		case cpuidFeatures:
			e.EBX = e.EBX&^(leaf1EBXAPICIDMask|leaf1EBXCountMask) |
				uint32(id)<<leaf1EBXAPICIDShift | uint32(n)<<leaf1EBXCountShift
			e.ECX |= leaf1ECXHypervisor
			if opt.tscDeadline {
				e.ECX |= leaf1ECXTSCDeadline
			}
			if n > 1 {
				e.EDX |= leaf1EDXHTT
			}
		case cpuidKVMFeatures:
			e.EAX &= kvmFeaturesKept
		case cpuidExtFeatures:
			if e.Index == 0 {
				e.ECX &^= leaf7ECXPKU | leaf7ECXOSPKE
			}
		case cpuidXSave:
			switch e.Index {
			case 0:
				e.EAX &^= 1 << xsaveFeaturePKRU
			case 1:
				e.EAX &^= leafDSub1XSAVEC | leafDSub1XSAVES
			case xsaveFeaturePKRU:
				e.EAX, e.EBX, e.ECX, e.EDX = 0, 0, 0, 0
			}
		case cpuidExtTopology, cpuidExtTopology2:
			e.EDX = uint32(id) // x2APIC ID of this logical processor
		}
	}
	fixXSaveSize(out)
	if opt.noXSave {
		out = hideXSave(out)
	}
	return out
}

// xsaveLegacySize is the legacy FXSAVE region plus the XSAVE header (SDM
// vol. 1, 13.4).
const xsaveLegacySize = 512 + 64

// fixXSaveSize sets CPUID.(EAX=0DH,ECX=0):EBX and ECX, the XSAVE area size,
// to the size of every state component the table still offers. KVM keeps
// EBX in step with the guest's XCR0 where it intercepts CPUID correctly;
// nested under an emulator it has been seen to leave the stale value, and
// the guest kernel then sizes its FPU buffers wrongly and corrupts memory.
// Linux enables every offered component, so the full size is right there.
func fixXSaveSize(entries []kvm.CPUIDEntry) {
	var leaf0 *kvm.CPUIDEntry
	size := uint32(xsaveLegacySize)
	for i := range entries {
		e := &entries[i]
		if e.Function != cpuidXSave {
			continue
		}
		if e.Index == 0 {
			leaf0 = e
		}
	}
	if leaf0 == nil {
		return
	}
	for i := range entries {
		e := &entries[i]
		if e.Function != cpuidXSave || e.Index < 2 || e.Index >= 32 || leaf0.EAX&(1<<e.Index) == 0 {
			continue
		}
		size = max(size, e.EBX+e.EAX) // offset + size of the component
	}
	leaf0.EBX, leaf0.ECX = size, size
}
