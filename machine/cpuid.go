package machine

import "github.com/govm/govm/kvm"

// CPUID leaves and bits govm adjusts (SDM vol. 2A, CPUID).
const (
	cpuidFeatures     = 0x1
	cpuidExtTopology  = 0xb
	cpuidExtTopology2 = 0x1f

	leaf1EBXAPICIDShift = 24
	leaf1EBXCountShift  = 16
	leaf1EBXCountMask   = 0xff << leaf1EBXCountShift
	leaf1EBXAPICIDMask  = 0xff << leaf1EBXAPICIDShift
	leaf1ECXHypervisor  = 1 << 31
	leaf1EDXHTT         = 1 << 28
)

// vcpuCPUID returns the CPUID table for vCPU id of n: the host's supported
// leaves with this vCPU's APIC ID, the logical processor count and the
// hypervisor bit.
func vcpuCPUID(supported []kvm.CPUIDEntry, id, n int) []kvm.CPUIDEntry {
	out := make([]kvm.CPUIDEntry, len(supported))
	copy(out, supported)
	for i := range out {
		e := &out[i]
		switch e.Function {
		case cpuidFeatures:
			e.EBX = e.EBX&^(leaf1EBXAPICIDMask|leaf1EBXCountMask) |
				uint32(id)<<leaf1EBXAPICIDShift | uint32(n)<<leaf1EBXCountShift
			e.ECX |= leaf1ECXHypervisor
			if n > 1 {
				e.EDX |= leaf1EDXHTT
			}
		case cpuidExtTopology, cpuidExtTopology2:
			e.EDX = uint32(id) // x2APIC ID of this logical processor
		}
	}
	return out
}
