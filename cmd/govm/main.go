// Command govm is a KVM virtual machine monitor that boots Linux kernels.
// This package owns the command line: flag parsing and validation, the
// terminal (raw mode, Ctrl-A escapes), host checks, and the mapping of how a
// VM ended to a documented exit code.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/govm/govm/guest/execinit"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// usageError marks errors in what the user typed.
type usageError struct{ error }

// init keeps the main goroutine on the process's main thread for good, so
// the goroutines that serve the guest (vCPUs, device loops), each locked
// to a thread it names, never land on the main thread, whose name is the
// process's (see osthread.Lock).
func init() { runtime.LockOSThread() }

func main() {
	// In govm exec's initramfs this executable is the guest's init.
	if os.Getpid() == 1 {
		execinit.Main()
	}
	os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// execute runs the CLI and returns the process exit code. Every defer in
// the command paths (terminal restore, file closes) has run when it returns.
func execute(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	code := ExitOK
	root := &cobra.Command{
		Use:           "govm",
		Short:         "govm boots Linux kernels in KVM virtual machines",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRunCmd(stdin, stdout, stderr, &code), newVersionCmd(stdout), newCheckCmd(stdout, &code),
		newInitramfsCmd(stdout, stderr), newExecCmd(stdin, stdout, stderr, &code))
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "govm: %v (see 'govm --help')\n", err)
		} else {
			fmt.Fprintf(stderr, "govm: %v\n", err)
		}
		return ExitError
	}
	return code
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print govm's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(stdout, "govm %s\n", version)
			return nil
		},
	}
}
