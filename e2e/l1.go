package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The one L1 launcher: the tests (runNested) and make run
// (internal/demo, RunNestedInteractive) start L1 the same way.

// l1Append is L1's kernel command line.
const l1Append = "console=ttyS0 quiet panic=-1"

// l1Memory is L1's RAM: room for a 4 GiB L2 guest (TestBoot) and the
// case's files in L1's initramfs.
const l1Memory = "6G"

// l1QEMUArgs is how L1 starts. For experiments, $GOVM_E2E_L1_CPU
// replaces the CPU model ("max": every feature TCG emulates, SVM
// included), $GOVM_E2E_L1_SMP the CPU count and $GOVM_E2E_L1_APPEND adds
// to its command line (e.g. govm.kvm_amd.PARAM=VALUE for kvm-amd). By
// default: two emulated CPUs with AMD SVM on single-threaded TCG, which ran
// L2 guests faster and more reliably than thread=multi
// (docs/nested-tcg-fault.md). Interactive, L1's console is the terminal,
// with QEMU's monitor on Ctrl-A c.
func l1QEMUArgs(kernel, initrd string, interactive bool) []string {
	app := l1Append
	if os.Getenv("GOVM_E2E_L1_PIN") != "0" {
		app += " " + l1Pin
	}
	serial := "stdio"
	if interactive {
		serial = "mon:stdio"
	}
	return []string{
		"-accel", "tcg,thread=single", "-cpu", envOr("GOVM_E2E_L1_CPU", "max"), "-smp", envOr("GOVM_E2E_L1_SMP", "2"), "-m", l1Memory,
		"-kernel", kernel, "-initrd", initrd, "-append", strings.TrimSpace(app + " " + os.Getenv("GOVM_E2E_L1_APPEND")),
		"-nographic", "-no-reboot", "-nodefaults", "-serial", serial,
	}
}

// l1Command is the QEMU process of one L1. It dies with its parent, also
// when go test's own timeout ends the parent without cancelling anything.
func l1Command(ctx context.Context, kernel, initrd string, interactive bool, extra ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", append(l1QEMUArgs(kernel, initrd, interactive), extra...)...)
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// l1Initrd writes L1's initramfs to a temporary file: the base archive
// (scripts/assets.sh: busybox, the modules, govm, the L2 kernel and
// initramfs), the peers' archive if asked, and the case's files.
// Concatenated newc archives make one initramfs. The caller removes it.
func (a *Assets) l1Initrd(files []cpioFile, peers bool) (string, error) {
	f, err := os.CreateTemp("", "govm-l1-*.cpio")
	if err != nil {
		return "", err
	}
	parts := []string{a.L1Base}
	if peers {
		parts = append(parts, filepath.Join(a.Dir, "l1-peers.cpio"))
	}
	for _, p := range parts {
		if err == nil {
			err = appendFile(f, p)
		}
	}
	if err == nil {
		err = writeCpio(f, files)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("building the L1 initramfs: %w", err)
	}
	return f.Name(), nil
}

// appendFile copies the file at path to w.
func appendFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// RunNestedInteractive runs `govm run ARGS` in an L1 guest with the
// terminal as its console, for make run; args name the assets as they
// are inside L1 (Assets.Expand). It returns when L1 powers off.
func RunNestedInteractive(ctx context.Context, a *Assets, args []string) error {
	govm := "govm run"
	for _, arg := range args {
		govm += " " + shellQuote(arg)
	}
	script := fmt.Sprintf("cd /tmp\necho GOVM-START\n%s </dev/console\necho %s=$?\n", govm, markerRC)
	initrd, err := a.l1Initrd([]cpioFile{{Name: "case.sh", Mode: 0o755, Data: []byte(script)}}, false)
	if err != nil {
		return err
	}
	defer os.Remove(initrd)
	cmd := l1Command(ctx, a.L1Kernel, initrd, true)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}
