package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
)

// Host-side commands, for the tests' end of a transfer (inside L1 when
// nested). They are the agent's own code rather than a shell's nc, whose
// behaviour with a listening socket and an idle stdin varies.
//
//	govm-agent send PORT FILE      serve FILE to the first connection on PORT
//	govm-agent recv PORT SUMFILE   read the first connection on PORT to its
//	                               end and write its SHA-256 to SUMFILE
//	govm-agent bench FILE          measure FILE as diskbench does /dev/vda
func hostCommand(args []string) error {
	switch {
	case len(args) == 2 && args[0] == "bench":
		return sayBench(printLine, "GOVM-HOST-BENCH", args[1])
	case len(args) == 3 && args[0] == "send":
		return serveOnce(args[1], func(c net.Conn) error {
			f, err := os.Open(args[2])
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(c, f)
			return err
		})
	case len(args) == 3 && args[0] == "recv":
		return serveOnce(args[1], func(c net.Conn) error {
			h := sha256.New()
			if _, err := io.Copy(h, c); err != nil {
				return err
			}
			// Written whole, then renamed: a reader sees all or nothing.
			tmp := args[2] + ".tmp"
			if err := os.WriteFile(tmp, []byte(hex.EncodeToString(h.Sum(nil))+"\n"), 0o644); err != nil {
				return err
			}
			return os.Rename(tmp, args[2])
		})
	}
	return fmt.Errorf("usage: govm-agent bench FILE | send PORT FILE | recv PORT SUMFILE")
}

// serveOnce accepts one connection on port, runs serve on it and closes it.
func serveOnce(port string, serve func(net.Conn) error) error {
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
	return serve(c)
}
