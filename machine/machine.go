package machine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govm/govm/acpi"
	"github.com/govm/govm/boot"
	"github.com/govm/govm/bus"
	"github.com/govm/govm/devices"
	"github.com/govm/govm/hostinfo"
	"github.com/govm/govm/kvm"
	"github.com/govm/govm/mem"
	"github.com/govm/govm/pci"
	"github.com/govm/govm/virtio"
)

// Config describes a VM: what a user of govm can ask for.
type Config struct {
	KVMPath string // default kvm.DevicePath
	MemSize uint64
	CPUs    int
	// CPUAffinity pins vCPU i's thread to host CPU CPUAffinity[i]. Empty
	// leaves the vCPUs to the host's scheduler; otherwise it has one
	// entry per vCPU, each a CPU the process may run on.
	CPUAffinity []int
	Boot        boot.Config
	// Console receives the guest's serial output (COM1).
	Console io.Writer
	// Started is when the VMM started, for the boot timer (default: New).
	Started time.Time
	// Disks are virtio-blk devices on the PCI bus.
	Disks []Disk
	// Shares are host directories served over virtio-fs, after the disks
	// on PCI.
	Shares []Share
	// Ports, if any, are the ports of one multiport virtio-console after
	// the shares.
	Ports []virtio.ConsolePort
	// NICs are virtio-net interfaces on TAP devices or frame sockets,
	// after the console on PCI.
	NICs []NIC
	// NoRNG leaves out the virtio-rng device, which is otherwise last on
	// PCI: the guest's entropy from the host's getrandom(2).
	NoRNG bool
	// Seeds, if set, records the chains the guest's drivers make
	// available as fuzz seeds (GOVM_DEBUG_SEEDS; development only).
	Seeds *virtio.SeedRecorder

	// test, set only by this package's tests (export_test.go), runs a
	// tiny guest instead of a kernel.
	test *testGuest
}

// testGuest replaces the kernel and memory layout with a tiny test
// guest: RAM replaces the layout derived from MemSize, Start replaces
// loading a kernel (no ACPI tables either), and PIO and MMIO add devices.
type testGuest struct {
	RAM       []mem.Range
	Start     *boot.CPUState
	PIO, MMIO []mapping
	// Tuning, if set, replaces the tuning decided from the host.
	Tuning *tuning
}

// mapping places a device on a bus.
type mapping struct {
	Base, Size uint64
	Name       string
	Dev        bus.Device
}

// ErrAffinity is returned for a CPUAffinity the host cannot honour.
var ErrAffinity = errors.New("bad CPU affinity")

// ErrCPUs is returned for a vCPU count the host or the tables cannot take.
var ErrCPUs = errors.New("bad vCPU count")

// Result is how a VM ended.
type Result struct {
	Reason StopReason
	Detail string   // one line: what happened
	VCPU   int      // the vCPU that stopped the VM, or -1
	RIP    uint64   // its instruction pointer, for crashes
	Err    error    // for StopError
	Code   int      // for StopGuestExit: the guest's exit code
	RIPs   []uint64 // every vCPU's instruction pointer when the VM stopped
	// State describes each vCPU and virtio device, one line each, when
	// the VM was stopped from outside (StopCanceled): where it was stuck.
	State []string
}

// Stats are counters a VM keeps while it runs.
type Stats struct {
	Exits       map[string]uint64 // vCPU exits by kind
	VCPUYields  uint64            // vCPU loops' passes through Go's scheduler (osthread.Yielder)
	SerialBytes uint64            // bytes the guest wrote to COM1
	BootTime    time.Duration     // Config.Started to the first boot-timer write; 0 if none
	FirstRun    time.Duration     // Config.Started to vCPU 0's first KVM_RUN; 0 if none
	// FirstRunAt is CLOCK_MONOTONIC, in nanoseconds, at vCPU 0's first
	// KVM_RUN: the clock is system-wide, so whoever started govm can
	// take its own start-to-run time from it.
	FirstRunAt int64
	// GuestResident is the guest RAM the host has backed with pages (what
	// the guest touched), for telling govm's own memory from the guest's.
	GuestResident uint64
	NICs          []NICStats // per --net, in order
}

// NICStats are one NIC's counters.
type NICStats struct {
	TxFrames  uint64 `json:"tx_frames"`
	TxBytes   uint64 `json:"tx_bytes"`
	TxDropped uint64 `json:"tx_dropped"`
	RxFrames  uint64 `json:"rx_frames"`
	RxBytes   uint64 `json:"rx_bytes"`
	RxDropped uint64 `json:"rx_dropped"`
	RxStalls  uint64 `json:"rx_stalls"`
	TxStalls  uint64 `json:"tx_stalls"`
	RxCopied  uint64 `json:"rx_copied"`
	Wakes     uint64 `json:"wakes"`  // times the NIC's thread slept and woke to work
	Yields    uint64 `json:"yields"` // times the NIC's thread, busy for long, went through Go's scheduler
}

// Machine is a VM ready to run.
type Machine struct {
	cfg     Config
	tune    tuning
	host    hostinfo.Facts // as probed when the tuning was decided
	sys     *kvm.System
	vm      *kvm.VM
	mem     *mem.Memory
	pio     *bus.Bus
	mmio    *bus.Bus
	vcpus   []*vcpu
	Serial  *devices.Serial
	pciHost *pci.Host
	closers []func() error
	// virtioDevs are the virtio devices placed on PCI, slots 1 and up.
	virtioDevs []*virtio.PCIDevice
	msi        *msiRouter // GSI routes for MSIs
	intx       *intxLines // shared PCI INTx lines
	nets       []*virtio.Net

	bootTime   atomic.Int64 // nanoseconds, 0 until the boot timer fires
	firstRun   atomic.Int64 // nanoseconds from Config.Started to vCPU 0's first KVM_RUN
	firstRunAt atomic.Int64 // CLOCK_MONOTONIC nanoseconds then

	stopOnce sync.Once
	stopping atomic.Bool
	result   Result
	done     chan struct{}
}

// New creates the VM: memory, irqchip, PIT, devices, ACPI tables, the
// loaded kernel and the vCPUs with their boot state. On error everything
// made so far is released.
func New(cfg Config) (_ *Machine, err error) {
	if cfg.KVMPath == "" {
		cfg.KVMPath = kvm.DevicePath
	}
	if cfg.Console == nil {
		cfg.Console = io.Discard
	}
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	test := cfg.test
	if test == nil {
		test = &testGuest{}
	}
	ranges := test.RAM
	if ranges == nil {
		if ranges, err = RAMRanges(cfg.MemSize); err != nil {
			return nil, err
		}
	}
	m := &Machine{cfg: cfg, done: make(chan struct{})}
	if test.Tuning != nil {
		m.tune = *test.Tuning
	} else if m.tune, m.host, err = hostTuning(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if m.sys, err = kvm.Open(cfg.KVMPath); err != nil {
		return nil, err
	}
	if err = m.sys.CheckRequired(); err != nil {
		return nil, err
	}
	maxCPUs := min(m.sys.MaxVCPUs(), acpi.MaxCPUs)
	if cfg.CPUs < 1 || cfg.CPUs > maxCPUs {
		return nil, fmt.Errorf("%w: %d (this host allows 1 to %d)", ErrCPUs, cfg.CPUs, maxCPUs)
	}
	if err = checkAffinity(cfg.CPUAffinity, cfg.CPUs); err != nil {
		return nil, err
	}
	if m.vm, err = m.sys.CreateVM(); err != nil {
		return nil, err
	}
	if err = m.vm.SetTSSAddr(TSSAddr); err != nil {
		return nil, err
	}
	if err = m.vm.SetIdentityMapAddr(IdentityMapAddr); err != nil {
		return nil, err
	}
	m.intx = newINTxLines(m.vm)
	if err = m.vm.CreateIRQChip(); err != nil {
		return nil, err
	}
	m.msi = newMSIRouter(m.vm)
	if err = m.vm.CreatePIT2(); err != nil {
		return nil, err
	}
	if m.mem, err = mem.Allocate(ranges, m.tune.hugePages); err != nil {
		return nil, err
	}
	// Registering a memory slot sleeps through an SRCU grace period in
	// the host kernel (synchronize_srcu in kvm_swap_active_memslots),
	// most of a VM's start whatever the slot's size (docs/performance.md,
	// start-up). So the slots are registered while the kernel and
	// initrd are loaded (into the mapping, which needs no slot) and the
	// devices are built (their ioeventfds wait for the slots lock) and
	// the vCPUs are made and given their boot state (none of which needs
	// a slot; only KVM_RUN does, and Run comes after New). The join also
	// runs on every error return, so Close never races the ioctl.
	slots := make(chan error, 1)
	go func() {
		for i, r := range m.mem.Regions() {
			if err := m.vm.SetMemoryRegion(uint32(i), r.Base, r.Data); err != nil {
				slots <- err
				return
			}
		}
		slots <- nil
	}()
	joined := false
	join := func() error {
		joined = true
		return <-slots
	}
	defer func() {
		if !joined {
			_ = join()
		}
	}()
	state := test.Start
	if state == nil {
		if state, err = m.loadGuest(); err != nil {
			return nil, err
		}
	}
	if err = m.addDevices(test.PIO, test.MMIO); err != nil {
		return nil, err
	}
	if err = m.addDisks(); err != nil {
		return nil, err
	}
	if err = m.addShares(); err != nil {
		return nil, err
	}
	if err = m.addConsole(); err != nil {
		return nil, err
	}
	if err = m.addNICs(); err != nil {
		return nil, err
	}
	if err = m.addRNG(); err != nil {
		return nil, err
	}
	if err = m.makeVCPUs(state); err != nil {
		return nil, err
	}
	if err = join(); err != nil {
		return nil, err
	}
	return m, nil
}

// makeVCPUs creates the vCPUs with their CPUID tables and MSRs, and gives
// vCPU 0 the boot state.
func (m *Machine) makeVCPUs(state *boot.CPUState) error {
	cpuid, err := m.sys.SupportedCPUID()
	if err != nil {
		return err
	}
	n := m.cfg.CPUs
	opt := cpuidOptions{noXSave: !m.tune.xsave, tscDeadline: m.sys.CheckExtension(kvm.CapTSCDeadlineTimer) > 0}
	for i := range n {
		kv, err := m.vm.CreateVCPU(i)
		if err != nil {
			return err
		}
		m.vcpus = append(m.vcpus, &vcpu{id: i, kvm: kv})
		if err := kv.SetCPUID(vcpuCPUID(cpuid, i, n, opt)); err != nil {
			return fmt.Errorf("vCPU %d: %w", i, err)
		}
		if err := setMSRs(kv); err != nil {
			return fmt.Errorf("vCPU %d: %w", i, err)
		}
		if i == 0 {
			if err := setBootState(kv, state); err != nil {
				return fmt.Errorf("vCPU 0: %w", err)
			}
		}
	}
	return nil
}

// loadGuest writes the ACPI tables and loads the kernel.
func (m *Machine) loadGuest() (*boot.CPUState, error) {
	cfg := m.cfg
	tables, err := acpi.Build(ACPIAddr, acpi.Config{
		CPUs: cfg.CPUs, IOAPICAddr: IOAPICAddr, LAPICAddr: LAPICAddr, SleepPort: ACPIPMPort,
		SerialPort: devices.COM1Port, SerialIRQ: devices.COM1IRQ, PVPanicPort: devices.PVPanicPort,
		RTCPort: devices.CMOSPort, RTCIRQ: devices.RTCIRQ, RTCCentury: devices.RTCCentury,
		PCIMMIOBase: PCIMMIOBase, PCIMMIOEnd: PCIMMIOEnd, PCIRoutes: pciRoutes(),
	})
	if err != nil {
		return nil, err
	}
	if uint64(len(tables.Blob)) > ACPIEnd-ACPIAddr {
		return nil, fmt.Errorf("ACPI tables of %d bytes do not fit the BIOS area", len(tables.Blob))
	}
	if err = m.mem.WriteAt(tables.Blob, ACPIAddr); err != nil {
		return nil, fmt.Errorf("writing ACPI tables: %w", err)
	}
	return boot.Load(m.mem, cfg.Boot)
}

// irqLine drives one GSI of the in-kernel interrupt controllers.
type irqLine struct {
	vm  *kvm.VM
	gsi uint32
}

func (l irqLine) SetLevel(high bool) {
	if err := l.vm.IRQLine(l.gsi, high); err != nil {
		slog.Warn("irq line", "gsi", l.gsi, "err", err)
	}
}

func (m *Machine) addDevices(pio, mmio []mapping) error {
	m.pio = bus.New("pio", 0xff)
	m.mmio = bus.New("mmio", 0)
	power := func(a devices.PowerAction) {
		switch a {
		case devices.PowerOff:
			m.stop(Result{Reason: StopPoweroff, Detail: "guest powered off", VCPU: -1})
		case devices.PowerReset:
			m.stop(Result{Reason: StopReboot, Detail: "guest requested a reset", VCPU: -1})
		}
	}
	m.Serial = devices.NewSerial(m.cfg.Console, irqLine{vm: m.vm, gsi: devices.COM1IRQ})
	rtc := devices.NewCMOS(nil, irqLine{vm: m.vm, gsi: devices.RTCIRQ})
	m.closers = append(m.closers, func() error { rtc.Stop(); return nil })
	m.pciHost = pci.NewHost()
	for _, d := range []struct {
		base, size uint64
		name       string
		dev        bus.Device
	}{
		{devices.COM1Port, devices.UARTPorts, "serial COM1", m.Serial},
		{devices.I8042DataPort, 1, "i8042 data", devices.NewI8042(power)},
		{devices.I8042CommandPort, 1, "i8042 command", &offsetDevice{devices.NewI8042(power), devices.I8042CommandPort - devices.I8042DataPort}},
		{devices.CMOSPort, devices.CMOSPorts, "cmos", rtc},
		{pci.ConfigAddrPort, pci.ConfigPorts, "pci host", m.pciHost},
		{ACPIPMPort, acpi.PortCount, "acpi pm", devices.NewACPIPM(power)},
		{devices.ExitPortAddr, devices.ExitPorts, "exit port", devices.NewNotifyPort(func(code uint8) {
			m.stop(Result{Reason: StopGuestExit, Code: int(code), Detail: fmt.Sprintf("guest exit code %d", code), VCPU: -1})
		})},
		{devices.PVPanicPort, devices.PVPanicPorts, "pvpanic", devices.NewPVPanic(func(ev uint8) {
			if ev&devices.PVPanicPanicked != 0 {
				m.stop(Result{Reason: StopPanic, Detail: "guest kernel panic (pvpanic)", VCPU: -1})
			}
		})},
		{devices.BootTimerPort, devices.BootTimerPorts, "boot timer", devices.NewNotifyPort(func(uint8) {
			m.bootTime.CompareAndSwap(0, int64(time.Since(m.cfg.Started)))
		})},
	} {
		if err := m.pio.Insert(d.base, d.size, d.name, d.dev); err != nil {
			return err
		}
	}
	for _, d := range pio {
		if err := m.pio.Insert(d.Base, d.Size, d.Name, d.Dev); err != nil {
			return err
		}
	}
	for _, d := range mmio {
		if err := m.mmio.Insert(d.Base, d.Size, d.Name, d.Dev); err != nil {
			return err
		}
	}
	return nil
}

// offsetDevice shifts the offsets a device sees, for devices whose ports
// are not contiguous (the i8042's 0x60 and 0x64 around KVM's 0x61).
type offsetDevice struct {
	dev bus.Device
	off uint64
}

func (o *offsetDevice) Read(off uint64, data []byte)  { o.dev.Read(off+o.off, data) }
func (o *offsetDevice) Write(off uint64, data []byte) { o.dev.Write(off+o.off, data) }

// Stats returns the VM's counters.
func (m *Machine) Stats() Stats {
	st := Stats{Exits: map[string]uint64{}, BootTime: time.Duration(m.bootTime.Load()), FirstRun: time.Duration(m.firstRun.Load()), FirstRunAt: m.firstRunAt.Load()}
	if m.mem != nil {
		st.GuestResident, _ = m.mem.Resident()
	}
	for _, v := range m.vcpus {
		st.VCPUYields += v.yields.Load()
		for r := range v.exits {
			if n := v.exits[r].Load(); n > 0 {
				st.Exits[kvm.ExitReason(r).String()] += n
			}
		}
	}
	if m.Serial != nil {
		st.SerialBytes = m.Serial.TxBytes()
	}
	for _, n := range m.nets {
		s := &n.Stats
		st.NICs = append(st.NICs, NICStats{
			TxFrames: s.TxFrames.Load(), TxBytes: s.TxBytes.Load(), TxDropped: s.TxDropped.Load(),
			RxFrames: s.RxFrames.Load(), RxBytes: s.RxBytes.Load(), RxDropped: s.RxDropped.Load(),
			RxStalls: s.RxStalls.Load(), TxStalls: s.TxStalls.Load(), RxCopied: s.RxCopied.Load(), Wakes: s.Wakes.Load(), Yields: s.Yields.Load(),
		})
	}
	return st
}

// BootTime is the time from Config.Started to the guest's first write to
// the boot-timer port, 0 if none yet.
func (m *Machine) BootTime() time.Duration { return time.Duration(m.bootTime.Load()) }

// threads is how many of the machine's goroutines may sit in a blocking
// system call at one time once it runs: each vCPU (in KVM_RUN) and each
// device's queue workers (decisions/0003).
func (m *Machine) threads() int {
	n := len(m.vcpus)
	for _, d := range m.virtioDevs {
		n += d.Threads()
	}
	return n
}

// Host is what New learned of the host it runs on (zero for a test
// guest given its tuning).
func (m *Machine) Host() hostinfo.Facts { return m.host }

// Memory returns guest RAM.
func (m *Machine) Memory() *mem.Memory { return m.mem }

// stop records the first stop request and wakes Run.
func (m *Machine) stop(r Result) {
	m.stopOnce.Do(func() {
		m.result = r
		m.stopping.Store(true)
		close(m.done)
	})
}

// Run runs the vCPUs until the guest powers off, resets or crashes, or ctx
// is done, and returns how it ended. The vCPUs are all stopped when it
// returns.
//
// Run applies the machine's process-wide tuning first (the scheduling
// policy and GOMAXPROCS; docs/decisions/), so run one machine per process.
func (m *Machine) Run(ctx context.Context) Result {
	m.tune.applyProcess(m.threads())
	var wg sync.WaitGroup
	for _, v := range m.vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.runVCPU(v)
		}()
	}
	select {
	case <-m.done:
	case <-ctx.Done():
		m.stop(Result{Reason: StopCanceled, Detail: context.Cause(ctx).Error(), VCPU: -1})
	}
	m.kickAll(&wg)
	res := m.result
	for _, v := range m.vcpus {
		res.RIPs = append(res.RIPs, v.lastRIP.Load())
	}
	if res.Reason == StopCanceled {
		res.State = m.State()
	}
	return res
}

// Close releases the VM, its vCPUs and guest memory.
func (m *Machine) Close() error {
	if m.Serial != nil {
		m.Serial.Close()
	}
	for _, c := range m.closers {
		c()
	}
	m.closers = nil
	for _, v := range m.vcpus {
		v.kvm.Close()
	}
	m.vcpus = nil
	if m.vm != nil {
		m.vm.Close()
		m.vm = nil
	}
	if m.mem != nil {
		m.mem.Close()
		m.mem = nil
	}
	if m.sys != nil {
		m.sys.Close()
		m.sys = nil
	}
	return nil
}
