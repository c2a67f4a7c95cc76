// Command govm-agent runs inside a govm guest as u-root's uinit. It reports
// what the guest sees (CPUs, memory) on the console as GOVM-* marker lines,
// then does what the kernel command line asks with govm.action=: poweroff,
// reboot, panic, hang, exit:N (end the VM with code N through the exit
// port), or nothing (u-root's shell starts next). It marks the boot timer
// first. The end-to-end tests and
// `make run` use it.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/guest"
)

func main() {
	fmt.Println("GOVM-AGENT-START")
	if err := guest.BootDone(); err != nil {
		fmt.Printf("GOVM-AGENT-ERROR: %v\n", err)
	}
	fmt.Printf("GOVM-CPUS=%d\n", countCPUs())
	fmt.Printf("GOVM-MEMTOTAL-KB=%d\n", memTotalKB())
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		fmt.Printf("GOVM-UPTIME=%s\n", strings.Fields(string(b))[0])
	}
	act := action()
	if v, ok := strings.CutPrefix(act, "exit:"); ok {
		n, err := strconv.ParseUint(v, 10, 8)
		must(err)
		fmt.Printf("GOVM-AGENT: exiting with %d\n", n)
		must(guest.Exit(uint8(n)))
	}
	switch act {
	case "hang":
		fmt.Println("GOVM-AGENT: hanging")
		select {}
	case "poweroff":
		fmt.Println("GOVM-AGENT: powering off")
		unix.Sync()
		must(unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF))
	case "reboot":
		fmt.Println("GOVM-AGENT: rebooting")
		unix.Sync()
		must(unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART))
	case "panic":
		fmt.Println("GOVM-AGENT: triggering a kernel panic")
		must(os.WriteFile("/proc/sys/kernel/sysrq", []byte("1"), 0))
		must(os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0))
	default:
		fmt.Println("GOVM-AGENT: done; starting the shell")
	}
	time.Sleep(time.Hour) // poweroff/reboot do not return
}

func must(err error) {
	if err != nil {
		fmt.Printf("GOVM-AGENT-ERROR: %v\n", err)
		os.Exit(1)
	}
}

// action returns the value of govm.action= on the kernel command line.
func action() string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "govm.action="); ok {
			return v
		}
	}
	return ""
}

func countCPUs() int {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return -1
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "processor") {
			n++
		}
	}
	return n
}

func memTotalKB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); err == nil {
			return kb
		}
	}
	return -1
}
