// Command govm-host is the host side of govm's end-to-end tests and
// benchmarks, on the host or inside L1 when nested: it serves and checks
// the network transfers, measures the disk image the guest measured,
// checks crash-consistency records, follows a VMM's CPU time and times
// VMM boots. The guest side is guest/cmd/govm-agent; what both ends agree
// on is package agentkit.
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/govm/govm/internal/agentkit"
)

func main() {
	if err := hostCommand(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "govm-host:", err)
		os.Exit(1)
	}
}

// The commands, Go code rather than a shell's nc, whose behaviour with a
// listening socket and an idle stdin varies:
//
//	govm-host send PORT FILE [VMM]
//	                               serve FILE to the first connection on PORT
//	govm-host recv PORT SUMFILE [VMM]
//	                               read the first connection on PORT to its
//	                               end and write its CRC-32C to SUMFILE
//	                               (with VMM, a process name: say where CPU
//	                               time went meanwhile, cpuacct.go)
//	govm-host bench FILE          measure FILE as diskbench does /dev/vda
//	govm-host cpuwatch VMM        wait for a process named VMM, follow its
//	                               threads' CPU time until it exits and say
//	                               their totals (cpuacct.go)
//	govm-host time NAME CMD...    run CMD (output to NAME.log) and say its
//	                               wall time and exit status
//	govm-host pty INPUT CMD...    run CMD on a terminal, type INPUT, show
//	                               the terminal and say CMD's exit status
//	govm-host checkrecs FILE N    check records 0..N (records.go) in FILE
//	govm-host boot NAME MARKER SECONDS CMD...
//	                               run a VMM until its console shows MARKER
//	                               and say its boot time and memory (vmmboot.go)
//
// and the user-network ones in net.go.
func hostCommand(args []string) error {
	if ok, err := netCommand(args); ok {
		return err
	}
	switch {
	case len(args) >= 3 && args[0] == "time":
		return timeCommand(args[1], args[2:])
	case len(args) >= 5 && args[0] == "boot":
		secs, err := strconv.Atoi(args[3])
		if err != nil || secs <= 0 {
			return fmt.Errorf("boot: %q is not a number of seconds", args[3])
		}
		return bootCommand(args[1], args[2], time.Duration(secs)*time.Second, args[4:])
	case len(args) >= 3 && args[0] == "pty":
		return ptyCommand(args[1], args[2:])
	case len(args) == 3 && args[0] == "checkrecs":
		return checkRecords(args[1], args[2])
	case len(args) == 2 && args[0] == "cpuwatch":
		return cpuWatch(args[1])
	case len(args) == 2 && args[0] == "bench":
		return agentkit.SayBench(agentkit.PrintLine, "GOVM-HOST-BENCH", args[1])
	case (len(args) == 3 || len(args) == 4) && args[0] == "send":
		return serveOnce(args[1], vmmArg(args), func(c net.Conn) error {
			f, err := os.Open(args[2])
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(c, f)
			return err
		})
	case len(args) == 2 && args[0] == "sum":
		f, err := os.Open(args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		h := agentkit.NewNetSum()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		fmt.Println(agentkit.NetSumHex(h))
		return nil
	case (len(args) == 3 || len(args) == 4) && args[0] == "recv":
		return serveOnce(args[1], vmmArg(args), func(c net.Conn) error {
			h := agentkit.NewNetSum()
			if _, err := io.Copy(h, c); err != nil {
				return err
			}
			// Written whole, then renamed: a reader sees all or nothing.
			tmp := args[2] + ".tmp"
			if err := os.WriteFile(tmp, []byte(agentkit.NetSumHex(h)+"\n"), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, args[2])
		})
	}
	return fmt.Errorf("usage: govm-host bench FILE | send PORT FILE [VMM] | cpuwatch VMM | sum FILE | recv PORT SUMFILE [VMM] | time NAME CMD... | checkrecs FILE N | boot NAME MARKER SECONDS CMD | http ADDR DIR [N] | dns ADDR NAME=IP... | put ADDR FILE | ping ADDR | get URL | post URL FILE")
}

// vmmArg is send's and recv's optional VMM name: "" if not given.
func vmmArg(args []string) string {
	if len(args) == 4 {
		return args[3]
	}
	return ""
}

// serveOnce accepts one connection on port, runs serve on it and closes
// it. With a VMM's process name, it then says where CPU time went from the
// connection to the end of serve (cpuacct.go), labelled with the port.
func serveOnce(port, vmm string, serve func(net.Conn) error) error {
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	c, err := l.Accept()
	l.Close()
	if err != nil {
		return err
	}
	defer c.Close()
	var acct *cpuAcct
	if vmm != "" {
		acct = startCPUAcct(port, vmm)
	}
	err = serve(c)
	if acct != nil {
		acct.say()
	}
	return err
}

// timeCommand runs cmd with its output in name.log and says how long it
// took, as "GOVM-HOST-TIME name ms=N exit=N".
// exitStatus is a finished command's exit status, or the error that kept
// it from running.
func exitStatus(err error) (int, error) {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return 0, err
}

func timeCommand(name string, cmd []string) error {
	log, err := os.Create(name + ".log")
	if err != nil {
		return err
	}
	defer log.Close()
	c := exec.Command(cmd[0], cmd[1:]...)
	c.Stdin, c.Stdout, c.Stderr = nil, log, log
	start := time.Now()
	err = c.Run()
	ms := float64(time.Since(start).Microseconds()) / 1000
	code, err := exitStatus(err)
	if err != nil {
		return err
	}
	agentkit.PrintLine("GOVM-HOST-TIME %s ms=%.0f exit=%d", filepath.Base(name), ms, code)
	return nil
}
