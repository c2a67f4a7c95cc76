package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/govm/govm/internal/agentkit"
)

// bootResult is what bootCommand measured of one VMM run.
type bootResult struct {
	ms      float64 // process start to the console marker
	peakKB  int64   // VmHWM at the marker
	guestKB int64   // resident part of the largest mapping: the guest's RAM
}

// bootCommand runs a VMM's command line with its console (standard output
// and error) in name.log until the console shows marker, then reads the
// process's peak RSS and the resident size of its largest mapping (the
// guest's RAM), kills it and says "GOVM-HOST-BOOT name ms=N peak_kb=N
// guest_kb=N overhead_kb=N". The same code measures govm and its peers, so
// the figures compare: a serial console line is the one marker every VMM
// can show. If the marker does not come within limit, or the VMM exits
// first, it says "GOVM-HOST-BOOT name failed=REASON" instead.
func bootCommand(name, marker string, limit time.Duration, cmd []string) error {
	log, err := os.Create(name + ".log")
	if err != nil {
		return err
	}
	defer log.Close()
	r, err := runToMarker(log, marker, limit, cmd)
	if err != nil {
		agentkit.PrintLine("GOVM-HOST-BOOT %s failed=%q", filepath.Base(name), err.Error())
		return nil
	}
	agentkit.PrintLine("GOVM-HOST-BOOT %s ms=%.1f peak_kb=%d guest_kb=%d overhead_kb=%d",
		filepath.Base(name), r.ms, r.peakKB, r.guestKB, r.peakKB-r.guestKB)
	return nil
}

// runToMarker starts cmd, copies its output to log while looking for
// marker, measures the process when marker shows and kills it.
func runToMarker(log io.Writer, marker string, limit time.Duration, cmd []string) (bootResult, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return bootResult{}, err
	}
	c := exec.Command(cmd[0], cmd[1:]...)
	c.Stdin, c.Stdout, c.Stderr = nil, pw, pw
	start := time.Now()
	if err := c.Start(); err != nil {
		pr.Close()
		pw.Close()
		return bootResult{}, err
	}
	pw.Close()
	found := make(chan time.Duration, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		watchFor(pr, log, []byte(marker), func() { found <- time.Since(start) })
		pr.Close()
	}()
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()

	stop := func() {
		_ = c.Process.Kill()
		<-exited
		<-copied
	}
	select {
	case d := <-found:
		res := bootResult{ms: float64(d.Microseconds()) / 1000}
		res.peakKB, err = peakRSSKB(c.Process.Pid)
		if err == nil {
			res.guestKB, err = largestMappingRSSKB(c.Process.Pid)
		}
		stop()
		return res, err
	case err := <-exited:
		<-copied
		if err == nil {
			err = errors.New("exited 0")
		}
		return bootResult{}, fmt.Errorf("before the marker: %w", err)
	case <-time.After(limit):
		stop()
		return bootResult{}, fmt.Errorf("no marker within %v", limit)
	}
}

// watchFor copies r to w until r ends and calls onMatch once, when the
// stream first contains marker (also across reads).
func watchFor(r io.Reader, w io.Writer, marker []byte, onMatch func()) {
	buf := make([]byte, 32<<10)
	var tail []byte // the last len(marker)-1 bytes seen
	matched := false
	for {
		n, err := r.Read(buf)
		if n > 0 {
			_, _ = w.Write(buf[:n])
			if !matched {
				joined := append(tail, buf[:n]...)
				if bytes.Contains(joined, marker) {
					matched = true
					onMatch()
				}
				if keep := len(marker) - 1; len(joined) > keep {
					joined = joined[len(joined)-keep:]
				}
				tail = append(tail[:0], joined...)
			}
		}
		if err != nil {
			return
		}
	}
}

// peakRSSKB is VmHWM of process pid (proc(5), /proc/pid/status).
func peakRSSKB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return parseKB(v)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// largestMappingRSSKB is the resident size of process pid's largest
// mapping (proc(5), /proc/pid/smaps): a VMM's guest RAM, one anonymous
// mapping in govm, QEMU and gokvm alike.
func largestMappingRSSKB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var size, bestSize, bestRSS int64
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if v, ok := strings.CutPrefix(line, "Size:"); ok {
			if size, err = parseKB(v); err != nil {
				return 0, err
			}
		} else if v, ok := strings.CutPrefix(line, "Rss:"); ok && size > bestSize {
			rss, err := parseKB(v)
			if err != nil {
				return 0, err
			}
			bestSize, bestRSS = size, rss
		}
	}
	if bestSize == 0 {
		return 0, fmt.Errorf("no mappings in /proc/%d/smaps", pid)
	}
	return bestRSS, s.Err()
}

// parseKB parses a proc(5) size field, "   1234 kB".
func parseKB(v string) (int64, error) {
	return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
}
