package machine

import (
	"testing"

	"github.com/govm/govm/kvm"
)

func TestVCPUCPUID(t *testing.T) {
	supported := []kvm.CPUIDEntry{
		{Function: cpuidFeatures, EBX: 0xff00_0800, ECX: leaf1ECXXSAVE | leaf1ECXAVX | 1, EDX: 1},
		{Function: cpuidExtFeatures, Index: 0, EBX: leaf7EBXAVX2 | 1, ECX: leaf7ECXPKU | leaf7ECXOSPKE},
		{Function: cpuidXSave, Index: 0, EAX: 0x207, EBX: 0x240, ECX: 0xa88},
		{Function: cpuidXSave, Index: 1, EAX: leafDSub1XSAVES | leafDSub1XSAVEC | 1},
		{Function: cpuidXSave, Index: 2, EAX: 256, EBX: 576},
		{Function: cpuidXSave, Index: 9, EAX: 8, EBX: 2688},
		{Function: cpuidExtTopology, Index: 0},
		{Function: cpuidKVMFeatures, EAX: 0xffffffff},
	}
	find := func(es []kvm.CPUIDEntry, fn, idx uint32) *kvm.CPUIDEntry {
		for i := range es {
			if es[i].Function == fn && es[i].Index == idx {
				return &es[i]
			}
		}
		return nil
	}
	got := vcpuCPUID(supported, 3, 4, cpuidOptions{})
	l1 := find(got, cpuidFeatures, 0)
	if l1.EBX>>24 != 3 || l1.EBX>>16&0xff != 4 || l1.ECX&leaf1ECXHypervisor == 0 || l1.EDX&leaf1EDXHTT == 0 {
		t.Errorf("leaf 1 = %+v", l1)
	}
	if find(got, cpuidExtTopology, 0).EDX != 3 {
		t.Error("x2APIC ID")
	}
	if e := find(got, cpuidExtFeatures, 0); e.ECX&(leaf7ECXPKU|leaf7ECXOSPKE) != 0 {
		t.Error("PKU offered")
	}
	if e := find(got, cpuidXSave, 0); e.EAX != 0x7 || e.EBX != 832 || e.ECX != 832 {
		t.Errorf("XSAVE leaf 0 = %+v, want PKRU dropped and size 832", e)
	}
	if e := find(got, cpuidXSave, 1); e.EAX&(leafDSub1XSAVES|leafDSub1XSAVEC) != 0 {
		t.Error("compacted XSAVE offered")
	}
	if e := find(got, cpuidKVMFeatures, 0); e.EAX != kvmFeaturesKept {
		t.Errorf("KVM features %#x", e.EAX)
	}
	if supported[0].EBX != 0xff00_0800 {
		t.Fatal("input modified")
	}

	if l1.ECX&leaf1ECXTSCDeadline != 0 {
		t.Error("TSC deadline offered unasked")
	}
	if l1 := find(vcpuCPUID(supported, 0, 1, cpuidOptions{tscDeadline: true}), cpuidFeatures, 0); l1.ECX&leaf1ECXTSCDeadline == 0 {
		t.Error("TSC deadline not offered")
	}

	noX := vcpuCPUID(supported, 0, 1, cpuidOptions{noXSave: true})
	if l1 := find(noX, cpuidFeatures, 0); l1.ECX&(leaf1ECXXSAVE|leaf1ECXAVX) != 0 {
		t.Errorf("XSAVE/AVX still offered: %#x", l1.ECX)
	}
	if find(noX, cpuidXSave, 0) != nil || find(noX, cpuidExtFeatures, 0).EBX&leaf7EBXAVX2 != 0 {
		t.Error("XSAVE leaves or AVX2 kept")
	}
}
