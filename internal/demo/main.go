// Command demo boots the demo VM for make run: Debian's kernel and the
// u-root initramfs that scripts/assets.sh built, 512M, 2 vCPUs. Where this
// host's KVM cannot run Linux (kvm_pvm, no VT-x/AMD-V) the same govm
// command runs inside a nested L1 guest under QEMU TCG, started by the
// tests' own launcher (package e2e). Extra arguments go to govm run.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/govm/govm/e2e"
)

// demoArgs are govm run's flags for the demo VM, with {bzImage} and
// {initrd} for the kernel and initramfs wherever govm runs (e2e's
// Assets.Expand fills them in).
var demoArgs = []string{"--kernel", "{bzImage}", "--initrd", "{initrd}", "--mem", "512M", "--cpus", "2"}

func main() {
	err := run(os.Args[1:])
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode()) // govm's (or QEMU's) own verdict
	case err != nil:
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(extra []string) error {
	a, err := e2e.FindAssets()
	if err != nil {
		return err
	}
	mode, err := e2e.ChooseMode()
	if err != nil {
		return err
	}
	args := a.Expand(mode, append(append([]string(nil), demoArgs...), extra...))
	if mode == e2e.Direct {
		fmt.Fprintf(os.Stderr, "make run: govm run %s   (Ctrl-A x quits)\n", strings.Join(args, " "))
		cmd := exec.Command(a.Govm, append([]string{"run"}, args...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		return cmd.Run()
	}
	// Less traffic on the emulated L1 console.
	args = append(args, "--append", "quiet")
	fmt.Fprintln(os.Stderr, "make run: this host's /dev/kvm cannot boot Linux (kvm_pvm, no VT-x/AMD-V),")
	fmt.Fprintln(os.Stderr, "make run: so govm runs inside a nested L1 guest (QEMU TCG with emulated AMD SVM):")
	fmt.Fprintf(os.Stderr, "make run:   govm run %s\n", strings.Join(args, " "))
	fmt.Fprintln(os.Stderr, "make run: power the guest off with 'shutdown -h' (or Ctrl-A x to leave QEMU).")
	return e2e.RunNestedInteractive(context.Background(), a, args)
}
