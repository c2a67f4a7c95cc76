package hostinfo

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeHost writes a /proc/cpuinfo and a /sys/module tree into a
// temporary directory and returns their paths.
func fakeHost(t *testing.T, cpuinfo string, modules ...string) Paths {
	t.Helper()
	dir := t.TempDir()
	p := Paths{CPUInfo: filepath.Join(dir, "cpuinfo"), Modules: filepath.Join(dir, "module")}
	if cpuinfo != "" {
		if err := os.WriteFile(p.CPUInfo, []byte(cpuinfo), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range modules {
		if err := os.MkdirAll(filepath.Join(p.Modules, m), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

const (
	intelVMX = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\n" +
		"flags\t\t: fpu vme de pse tsc msr pae vmx ept sse4_2\n\nprocessor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n"
	amdSVM  = "processor\t: 0\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: fpu svm npt\n"
	tcgSVM  = "processor\t: 0\nmodel name\t: QEMU TCG CPU version 2.5+\nflags\t\t: fpu svm\n"
	pvmHost = "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse4_2 hypervisor\n"
)

func TestProbe(t *testing.T) {
	tests := []struct {
		name     string
		cpuinfo  string
		modules  []string
		want     Facts
		emulated bool
		hwVirt   bool
		canBoot  bool
	}{
		{"Intel with VT-x", intelVMX, []string{"kvm", "kvm_intel"},
			Facts{VMX: true, ModelName: "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"}, false, true, true},
		{"AMD with AMD-V", amdSVM, []string{"kvm_amd"},
			Facts{SVM: true, ModelName: "AMD EPYC 7B13 64-Core Processor"}, false, true, true},
		{"nested under QEMU TCG", tcgSVM, []string{"kvm_amd"},
			Facts{SVM: true, ModelName: "QEMU TCG CPU version 2.5+"}, true, true, true},
		{"kvm_pvm without VT-x/AMD-V", pvmHost, []string{"kvm", "kvm_pvm"},
			Facts{PVM: true, ModelName: "AMD EPYC 9B14"}, false, false, false},
		{"kvm_pvm on hardware virtualization", amdSVM, []string{"kvm_pvm", "kvm_amd"},
			Facts{SVM: true, PVM: true, ModelName: "AMD EPYC 7B13 64-Core Processor"}, false, true, true},
		{"no cpuinfo, no sysfs", "", nil, Facts{}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Probe(fakeHost(t, tt.cpuinfo, tt.modules...))
			if f != tt.want {
				t.Errorf("Probe = %+v, want %+v", f, tt.want)
			}
			if f.EmulatedCPU() != tt.emulated || f.HardwareVirt() != tt.hwVirt || f.CanBootLinux() != tt.canBoot {
				t.Errorf("emulated %v, hardware virt %v, can boot Linux %v; want %v %v %v",
					f.EmulatedCPU(), f.HardwareVirt(), f.CanBootLinux(), tt.emulated, tt.hwVirt, tt.canBoot)
			}
		})
	}
}
