package execinit

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/creack/pty"
)

// runOnTTY runs the command on a new pseudo-terminal, its controlling
// terminal, relaying the stdin port to the terminal and the terminal to
// the stdout port; "winsize" lines on the control port resize it.
func runOnTTY(cmd *exec.Cmd, cfg *Config, s streams, ctl *os.File, lines *bufio.Reader) (int, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return StatusInitError, fmt.Errorf("pty: %w", err)
	}
	defer ptmx.Close()
	if cfg.Rows > 0 && cfg.Cols > 0 {
		_ = pty.Setsize(ptmx, &pty.Winsize{Rows: cfg.Rows, Cols: cfg.Cols})
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0
	err = cmd.Start()
	tty.Close()
	if err != nil {
		return notStarted(cfg, s, ctl, err, StatusNotExec)
	}
	fmt.Fprintln(ctl, MsgStarted)
	go func() { _, _ = io.Copy(ptmx, s.stdin) }()
	go resizeFrom(lines, ptmx)
	// The terminal reads EIO once the command and everything it left
	// holding the terminal are gone, after the last of its output.
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(s.stdout, ptmx)
		close(copied)
	}()
	status := waitStatus(cmd.Wait())
	<-copied
	return status, nil
}

// resizeFrom applies "winsize ROWS COLS" lines to the terminal.
func resizeFrom(lines *bufio.Reader, ptmx *os.File) {
	for {
		l, err := lines.ReadString('\n')
		if err != nil {
			return
		}
		var rows, cols uint16
		if rest, ok := strings.CutPrefix(l, MsgWinsize); ok {
			if _, err := fmt.Sscanf(rest, "%d %d", &rows, &cols); err == nil {
				_ = pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols})
			}
		}
	}
}
