package agentkit

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUTimes is /proc/stat's "cpu" lines: per CPU, the ticks (USER_HZ) in
// user, nice, system, idle, iowait, irq, softirq, steal, guest.
func CPUTimes() map[string][]uint64 {
	out := map[string][]uint64{}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || !strings.HasPrefix(fields[0], "cpu") || fields[0] == "cpu" {
			continue
		}
		var v []uint64
		for _, s := range fields[1:10] {
			n, _ := strconv.ParseUint(s, 10, 64)
			v = append(v, n)
		}
		out[fields[0]] = v
	}
	return out
}

// tickMs is the length of a /proc/stat tick (USER_HZ, 100 on Linux/x86).
const tickMs = 1000 / 100

// CPUSplit is CPU time in milliseconds by kind, between two CPUTimes
// snapshots of one or more CPUs.
type CPUSplit struct{ user, system, softirq, irq, guest, idle uint64 }

// Add counts the growth from was to now of one CPU's CPUTimes line.
func (s *CPUSplit) Add(was, now []uint64) {
	d := func(i int) uint64 { return (now[i] - was[i]) * tickMs }
	s.user += d(0) + d(1)
	s.system += d(2)
	s.idle += d(3) + d(4)
	s.irq += d(5)
	s.softirq += d(6)
	s.guest += d(8)
}

// String says the split as name=ms pairs.
func (s CPUSplit) String() string {
	return fmt.Sprintf("user=%d system=%d softirq=%d irq=%d guest=%d idle=%d", s.user, s.system, s.softirq, s.irq, s.guest, s.idle)
}

// Say writes a report line where the tests read it: the kernel's log
// (and so the console) when it may write /dev/kmsg, as the guest agent
// and the host tool inside L1 can, else standard output.
func Say(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		_, err = f.WriteString("<3>" + line + "\n")
		f.Close()
		if err == nil {
			return
		}
	}
	fmt.Println(line)
}

// PrintLine writes a report line to standard output, for the host tool's
// commands whose output a script captures.
func PrintLine(format string, args ...any) { fmt.Printf(format+"\n", args...) }
