package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/creack/pty"

	"github.com/govm/govm/internal/agentkit"
)

// ptyCommand runs cmd on a new pseudo-terminal of 30x100, as a user at a
// terminal would: it types input (with \n for Enter), copies what the
// terminal shows to stdout, and says cmd's exit status.
func ptyCommand(input string, cmd []string) error {
	c := exec.Command(cmd[0], cmd[1:]...)
	f, err := pty.StartWithSize(c, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		return err
	}
	go func() { _, _ = io.WriteString(f, strings.ReplaceAll(input, `\n`, "\r")) }()
	_, _ = io.Copy(os.Stdout, f) // ends with EIO when cmd is gone
	code, err := exitStatus(c.Wait())
	if err != nil {
		return err
	}
	fmt.Println()
	agentkit.PrintLine("GOVM-HOST-PTY exit=%d", code)
	return nil
}
