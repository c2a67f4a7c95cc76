// Command govm-exit ends the govm VM it runs in with the exit code given
// as its argument (0-255): govm run exits with that code. As u-root's
// uinit, it takes the code from the kernel command line:
//
//	govm run --uroot ./guest/cmd/govm-exit --append uroot.uinitargs=7 ...
//
// It prints "govm-exit: N" first, so a console log shows who ended the VM.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/govm/govm/guest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: govm-exit CODE (0-255)")
		os.Exit(2)
	}
	code, err := strconv.ParseUint(os.Args[1], 10, 8)
	if err != nil {
		fmt.Fprintf(os.Stderr, "govm-exit: %q is not an exit code (0-255)\n", os.Args[1])
		os.Exit(2)
	}
	fmt.Printf("govm-exit: %d\n", code)
	if err := guest.Exit(uint8(code)); err != nil {
		fmt.Fprintf(os.Stderr, "govm-exit: %v\n", err)
		os.Exit(1)
	}
	// Under govm the VM has ended by now; anywhere else the write went
	// nowhere.
	time.Sleep(time.Second)
	fmt.Fprintln(os.Stderr, "govm-exit: the VM did not end: not running under govm?")
	os.Exit(1)
}
