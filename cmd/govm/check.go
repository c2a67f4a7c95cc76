package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/govm/govm/hostinfo"
	"github.com/govm/govm/kvm"
)

func newCheckCmd(stdout io.Writer, code *int) *cobra.Command {
	kvmPath := kvm.DevicePath
	c := &cobra.Command{
		Use:   "check",
		Short: "Check whether this host can run govm guests, and say why not",
		Long: `Check /dev/kvm (presence, permission, API version, the capabilities govm
needs), hardware virtualization (vmx/svm), nested virtualization, and whether
the KVM backend runs guest kernel code natively. Exits 0 only if 'govm run'
will boot a Linux guest here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !runCheck(stdout, kvmPath, hostinfo.DefaultPaths) {
				*code = ExitError
			}
			return nil
		},
	}
	c.Flags().StringVar(&kvmPath, "kvm", kvm.DevicePath, "KVM device")
	return c
}

// runCheck prints one line per check and reports whether govm run will work.
func runCheck(w io.Writer, kvmPath string, paths hostinfo.Paths) bool {
	ok := true
	report := func(pass bool, what, detail string) {
		mark := "ok  "
		if !pass {
			mark = "FAIL"
			ok = false
		}
		fmt.Fprintf(w, "%s %-28s %s\n", mark, what, detail)
	}
	info := func(what, detail string) { fmt.Fprintf(w, "info %-28s %s\n", what, detail) }

	facts := hostinfo.Probe(paths)
	switch {
	case facts.VMX:
		info("hardware virtualization", "Intel VT-x (vmx)")
	case facts.SVM:
		info("hardware virtualization", "AMD-V (svm)")
	default:
		info("hardware virtualization", "none in /proc/cpuinfo")
	}
	for _, mod := range []string{"kvm_intel", "kvm_amd"} {
		if b, err := os.ReadFile(paths.Modules + "/" + mod + "/parameters/nested"); err == nil {
			info("nested virtualization", fmt.Sprintf("%s nested=%s", mod, strings.TrimSpace(string(b))))
		}
	}

	sys, err := kvm.Open(kvmPath)
	switch {
	case errors.Is(err, kvm.ErrNoDevice):
		report(false, kvmPath, "missing: "+fixNoKVM)
		return false
	case errors.Is(err, kvm.ErrPermission):
		report(false, kvmPath, "no permission: "+fixKVMPermission)
		return false
	case err != nil:
		report(false, kvmPath, err.Error())
		return false
	}
	defer sys.Close()
	report(true, kvmPath, "opened read-write")
	report(true, "KVM API version", fmt.Sprint(kvm.APIVersion))
	for _, c := range kvm.RequiredCaps {
		if sys.CheckExtension(c) <= 0 {
			report(false, c.String(), "missing")
		}
	}
	if ok {
		report(true, "KVM capabilities", fmt.Sprintf("all %d govm needs", len(kvm.RequiredCaps)))
	}
	info("max vCPUs", fmt.Sprint(sys.MaxVCPUs()))
	if facts.CanBootLinux() {
		report(true, "guest kernel code", "runs natively")
	} else {
		report(false, "guest kernel code", "this KVM is kvm_pvm without VT-x/AMD-V: guest kernel code is "+
			"emulated and Linux guests will not boot; use a host with hardware virtualization, or run govm "+
			"inside a nested L1 guest (make run does this)")
	}
	return ok
}
