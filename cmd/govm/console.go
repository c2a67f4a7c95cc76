package main

import (
	"io"

	"github.com/govm/govm/devices"
)

// Console escapes on a terminal: Ctrl-A then x quits, Ctrl-A Ctrl-A sends
// one Ctrl-A (as in QEMU's -nographic mode).
const (
	escapeByte = 0x01 // Ctrl-A
	escapeQuit = 'x'
)

// consoleFilter applies the escape sequences to input bytes, returning the
// bytes for the guest and whether the user asked to quit. pending carries an
// escape byte seen at the end of the previous chunk.
func consoleFilter(in []byte, pending *bool) (out []byte, quit bool) {
	out = in[:0:0]
	for _, b := range in {
		if *pending {
			*pending = false
			switch b {
			case escapeQuit:
				return out, true
			case escapeByte:
				out = append(out, escapeByte)
			default:
				out = append(out, escapeByte, b)
			}
			continue
		}
		if b == escapeByte {
			*pending = true
			continue
		}
		out = append(out, b)
	}
	return out, false
}

// feedConsole copies input to the guest's serial port until EOF. With
// escapes on (a terminal), Ctrl-A x closes quit. At EOF it returns and the
// guest keeps running.
func feedConsole(in io.Reader, s *devices.Serial, escapes bool, quit chan<- struct{}) {
	buf := make([]byte, 256)
	pending := false
	for {
		n, err := in.Read(buf)
		if n > 0 {
			data := buf[:n]
			if escapes {
				var q bool
				data, q = consoleFilter(data, &pending)
				if len(data) > 0 {
					s.Feed(data)
				}
				if q {
					close(quit)
					return
				}
			} else {
				s.Feed(data)
			}
		}
		if err != nil {
			return
		}
	}
}
