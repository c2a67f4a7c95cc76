// Package execinit is the guest side of `govm exec`: the init (PID 1) of
// the VM that runs one host command. govm copies its own executable into
// the initramfs as /init, so the init always speaks the host's protocol
// and needs no toolchain; main hands over to Main when it runs as PID 1.
//
// The init loads the modules the initramfs carries, reads its Config from
// the control port, mounts the host's root over virtio-fs (read-only,
// under a tmpfs overlay, unless the host asks for it read-write) and the
// shares, runs the command as the caller with its streams on the
// console's ports, and ends the VM with the command's exit status on
// govm's exit port.
package execinit

import (
	"encoding/json"
	"fmt"
	"io"
)

// Console port names (sysfs name of each /dev/vportNpM).
const (
	PortControl = "govm.ctl"
	PortStdin   = "govm.stdin"
	PortStdout  = "govm.stdout"
	PortStderr  = "govm.stderr"
)

// Share tags and the initramfs's fixed paths.
const (
	RootTag     = "govm-root"
	ModulesList = "/govm/modules" // module files to load, one per line, in order
)

// Config is what the host tells the init, as one JSON line on the
// control port.
type Config struct {
	Args   []string // the command; Args[0] is looked up in the caller's PATH
	Env    []string
	Dir    string // working directory
	UID    uint32
	GID    uint32
	Groups []uint32
	// TTY runs the command on a pseudo-terminal of Rows x Cols; its
	// output then arrives on the stdout port alone.
	TTY        bool
	Rows, Cols uint16
	// RootRW mounts the host's root read-write instead of under an
	// overlay whose writes stay in the guest.
	RootRW bool
	Mounts []Mount
	// Net are the NICs to configure, on networks govm serves.
	Net []NetIface
}

// Mount is a share to mount: its tag at Path in the guest.
type Mount struct {
	Tag      string
	Path     string
	ReadOnly bool
}

// Messages from the init to the host on the control port, one per line.
const (
	// MsgStarted says the command is running: from here on its exit
	// status is the VM's.
	MsgStarted = "started"
	// MsgError prefixes a line saying why the init could not run the
	// command.
	MsgError = "error "
	// MsgWinsize prefixes a host line with the terminal's new size:
	// "winsize ROWS COLS".
	MsgWinsize = "winsize "
)

// Statuses the init ends the VM with when the command did not decide.
const (
	StatusNotFound  = 127 // as a shell: no such command
	StatusNotExec   = 126 // found but not executable
	StatusInitError = 125 // the init failed before the command ran
	statusSignalled = 128 // plus the signal's number
)

// WriteConfig sends c as the control port's first line.
func WriteConfig(w io.Writer, c *Config) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// parseConfig decodes the first line.
func parseConfig(line []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(line, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(c.Args) == 0 {
		return nil, fmt.Errorf("config: no command")
	}
	return &c, nil
}
