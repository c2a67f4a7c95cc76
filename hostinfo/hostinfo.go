// Package hostinfo owns what govm learns about the host outside the KVM
// API: whether the CPU has hardware virtualization (vmx/svm), and whether
// /dev/kvm is served by a backend that cannot run guest kernel code natively
// (kvm_pvm), so a Linux guest would sit silent for minutes and then die.
package hostinfo

import (
	"bufio"
	"os"
	"strings"
)

// Paths read, overridable in tests.
type Paths struct {
	CPUInfo string // /proc/cpuinfo
	Modules string // /sys/module
}

// DefaultPaths are the real ones.
var DefaultPaths = Paths{CPUInfo: "/proc/cpuinfo", Modules: "/sys/module"}

// Facts are what the host offers.
type Facts struct {
	VMX, SVM  bool   // hardware virtualization flags in /proc/cpuinfo
	PVM       bool   // the kvm_pvm module is loaded
	ModelName string // the first CPU's model name
}

// EmulatedCPU reports a CPU that QEMU's TCG emulator provides ("QEMU TCG
// CPU", "QEMU Virtual CPU"): KVM running on it is nested under an
// emulator, whose SVM emulation does not give KVM the guest's XSETBV.
func (f Facts) EmulatedCPU() bool {
	return strings.Contains(f.ModelName, "QEMU")
}

// HardwareVirt reports VT-x or AMD-V.
func (f Facts) HardwareVirt() bool { return f.VMX || f.SVM }

// CanBootLinux reports whether /dev/kvm can run a Linux guest's kernel
// code natively. kvm_pvm without VT-x/AMD-V emulates every CPL0
// instruction and lacks some that Linux needs.
func (f Facts) CanBootLinux() bool { return f.HardwareVirt() || !f.PVM }

// Probe reads the host's facts.
func Probe(p Paths) Facts {
	var f Facts
	if file, err := os.Open(p.CPUInfo); err == nil {
		sc := bufio.NewScanner(file)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "model name") && f.ModelName == "" {
				_, v, _ := strings.Cut(line, ":")
				f.ModelName = strings.TrimSpace(v)
				continue
			}
			if !strings.HasPrefix(line, "flags") {
				continue
			}
			_, flags, _ := strings.Cut(line, ":")
			for _, fl := range strings.Fields(flags) {
				switch fl {
				case "vmx":
					f.VMX = true
				case "svm":
					f.SVM = true
				}
			}
			break
		}
		file.Close()
	}
	if _, err := os.Stat(p.Modules + "/kvm_pvm"); err == nil {
		f.PVM = true
	}
	return f
}
