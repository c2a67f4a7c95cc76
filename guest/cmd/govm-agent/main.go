// Command govm-agent runs inside a govm guest as u-root's uinit. It marks
// the boot timer, reports what the guest sees (CPUs, memory, disks) on the
// console as GOVM-* marker lines, then does what the kernel command line
// asks with govm.action=:
//
//   - poweroff, reboot, panic, hang, exit:N (end the VM with code N through
//     the exit port);
//   - disktest: check and write the virtio disks, and the ext4 one by file
//     (see disktest.go), then power off;
//   - diskbench: measure /dev/vda (see diskbench.go), then power off;
//   - synctest: write and fsync a pattern on /dev/vda, say GOVM-SYNCED and
//     wait to be killed;
//   - records: write and fsync numbered records on /dev/vda until killed
//     (see records.go);
//   - soak: disktest and nettest in one boot, then power off (make soak);
//   - nettest: configure NICs, ping the host and move data over TCP as
//     govm.net= parameters say (see nettest.go);
//   - echo: read one line typed on the console, say it back upper-cased
//     and power off;
//   - nothing: u-root's shell starts next.
//
// The end-to-end tests and `make run` use it. Run with arguments on a
// host, it is the tests' host-side tool instead (see hostcmds.go).
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govm/govm/guest"
	"github.com/govm/govm/internal/agentkit"
)

func main() {
	// /dev/kmsg is rate limited to a few lines by default; the agent says
	// a dozen.
	_ = os.WriteFile("/proc/sys/kernel/printk_devkmsg", []byte("on\n"), 0)
	say("GOVM-AGENT-START")
	// Under another VMM (the benchmarks' peers) the boot timer is not there.
	if guest.OnGovm() {
		if err := guest.BootDone(); err != nil {
			say("GOVM-AGENT-ERROR: %v", err)
		}
	}
	loadModules()
	say("GOVM-CPUS=%d", countCPUs())
	say("GOVM-MEMTOTAL-KB=%d", memTotalKB())
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		say("GOVM-UPTIME=%s", strings.Fields(string(b))[0])
	}
	guest.DrainConsole()
	act := action()
	if v, ok := strings.CutPrefix(act, "exit:"); ok {
		n, err := strconv.ParseUint(v, 10, 8)
		must(err)
		say("GOVM-AGENT: exiting with %d", n)
		must(guest.Exit(uint8(n))) // drains the console first
	}
	switch act {
	case "disktest":
		stop := watch(act)
		diskTest()
		stop()
		sayIRQs()
		shutdown("powering off", unix.LINUX_REBOOT_CMD_POWER_OFF)
	case "synctest":
		syncTest()
		hang()
	case "soak":
		stop := watch(act)
		diskTest()
		netTest()
		stop()
		say("GOVM-SOAK-DONE")
		shutdown("powering off", unix.LINUX_REBOOT_CMD_POWER_OFF)
	case "records":
		writeRecords()
		hang()
	case "diskbench":
		_ = agentkit.SayBench(say, "GOVM-BENCH", "/dev/vda")
		shutdown("powering off", unix.LINUX_REBOOT_CMD_POWER_OFF)
	case "nettest":
		stop := watch(act)
		netTest()
		stop()
		shutdown("powering off", unix.LINUX_REBOOT_CMD_POWER_OFF)
	case "echo":
		echoLine()
		shutdown("powering off", unix.LINUX_REBOOT_CMD_POWER_OFF)
	case "hang":
		hang()
	case "poweroff":
		shutdown("powering off", unix.LINUX_REBOOT_CMD_POWER_OFF)
	case "reboot":
		shutdown("rebooting", unix.LINUX_REBOOT_CMD_RESTART)
	case "panic":
		say("GOVM-AGENT: triggering a kernel panic")
		must(os.WriteFile("/proc/sys/kernel/sysrq", []byte("1"), 0))
		must(os.WriteFile("/proc/sysrq-trigger", []byte("c"), 0))
	default:
		say("GOVM-AGENT: done; starting the shell")
	}
	time.Sleep(time.Hour) // poweroff/reboot do not return
}

// hang waits to be killed (or for govm's timeout).
func hang() {
	say("GOVM-AGENT: hanging")
	for {
		time.Sleep(time.Hour)
	}
}

// echoLine proves the console's input path: it asks for a line, reads it
// from the console's tty and says it back upper-cased, so the answer is
// the guest's work and not the tty echoing what was typed.
func echoLine() {
	tty, err := os.Open("/dev/console")
	must(err)
	defer tty.Close()
	say("GOVM-INPUT-READY")
	line, err := bufio.NewReader(tty).ReadString('\n')
	must(err)
	say("GOVM-INPUT=%s", strings.ToUpper(strings.TrimSpace(line)))
}

// shutdown says what it does, lets the console drain, syncs and powers
// off or restarts (cmd is a LINUX_REBOOT_CMD_*).
func shutdown(what string, cmd int) {
	say("GOVM-AGENT: %s", what)
	guest.DrainConsole()
	unix.Sync()
	must(unix.Reboot(cmd))
}

func must(err error) {
	if err != nil {
		say("GOVM-AGENT-ERROR: %v", err)
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

// cmdlineFlag says whether the kernel command line has the word name.
func cmdlineFlag(name string) bool {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if f == name {
			return true
		}
	}
	return false
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

// moduleDir holds the kernel modules govm's initramfs carries, and
// moduleOrder is the order their dependencies need.
const moduleDir = "/lib/modules/govm"

var moduleOrder = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
	"virtio_pci", "virtio_blk", "failover", "net_failover", "virtio_net", "virtio-rng",
}

// loadModules loads the virtio drivers, which Debian's kernel builds as
// modules.
func loadModules() {
	for _, name := range moduleOrder {
		f, err := os.Open(moduleDir + "/" + name + ".ko")
		if err != nil {
			continue
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			say("GOVM-AGENT-ERROR: loading %s: %v", name, err)
		}
	}
	// Give the drivers a moment to probe their devices.
	for i := 0; i < 50; i++ {
		if m, _ := filepath.Glob("/sys/block/vd*"); len(m) > 0 {
			time.Sleep(100 * time.Millisecond)
			break
		}
		if _, err := os.Stat(moduleDir + "/virtio_blk.ko"); err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	sayRNG()
	sayRTC(cmdlineFlag("govm.rtcirq"))
	disks, _ := filepath.Glob("/sys/block/vd*")
	for _, d := range disks {
		name := filepath.Base(d)
		size := strings.TrimSpace(readFile(d + "/size"))
		ro := strings.TrimSpace(readFile(d + "/ro"))
		serial := strings.TrimSpace(readFile(d + "/serial"))
		say("GOVM-DISK %s sectors=%s ro=%s serial=%s", name, size, ro, serial)
	}
}

// sayRNG says which hardware RNG the kernel uses and how many bytes a
// read of it gave: GOVM-RNG current=virtio_rng.0 read=16.
func sayRNG() {
	current := strings.TrimSpace(readFile("/sys/class/misc/hw_random/rng_current"))
	n := 0
	if f, err := os.Open("/dev/hwrng"); err == nil {
		b := make([]byte, 16)
		n, _ = io.ReadFull(f, b)
		f.Close()
	}
	say("GOVM-RNG current=%s read=%d", current, n)
}

// sayRTC says what /dev/rtc0 reads (Unix seconds, UTC) and, if asked,
// whether an update-ended interrupt arrives within rtcIRQWait of asking
// for one, as hwclock waits for the next second:
// GOVM-RTC unix=1796680000 irq=true.
func sayRTC(waitIRQ bool) {
	f, err := os.Open("/dev/rtc0")
	if err != nil {
		say("GOVM-RTC none err=%v", err)
		return
	}
	defer f.Close()
	fd := int(f.Fd())
	tm, err := unix.IoctlGetRTCTime(fd)
	if err != nil {
		say("GOVM-RTC none err=RTC_RD_TIME: %v", err)
		return
	}
	t := time.Date(int(tm.Year)+1900, time.Month(tm.Mon+1), int(tm.Mday), int(tm.Hour), int(tm.Min), int(tm.Sec), 0, time.UTC)
	irq := "unasked"
	if waitIRQ {
		irq = strconv.FormatBool(rtcUpdateIRQ(fd))
	}
	say("GOVM-RTC unix=%d irq=%s", t.Unix(), irq)
}

// rtcIRQWait bounds the wait for one update-ended interrupt (one comes
// each second).
const rtcIRQWait = 3000 // ms

func rtcUpdateIRQ(fd int) bool {
	if err := unix.IoctlSetInt(fd, unix.RTC_UIE_ON, 0); err != nil {
		say("GOVM-RTC-ERROR RTC_UIE_ON: %v", err)
		return false
	}
	defer unix.IoctlSetInt(fd, unix.RTC_UIE_OFF, 0)
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, rtcIRQWait); n != 1 || err != nil {
		return false
	}
	var data [8]byte // the interrupt count and kind, one unsigned long
	n, err := unix.Read(fd, data[:])
	return err == nil && n == len(data)
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

// say prints a line on the console through the kernel log (/dev/kmsg):
// the kernel writes it to the console before the write returns, so a line
// said just before a poweroff or an exit-port write is never lost, as it
// can be in the tty's buffer. Without /dev/kmsg it falls back to stdout.
func say(format string, args ...any) { agentkit.Say(format, args...) }
