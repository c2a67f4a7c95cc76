package machine

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/govm/govm/share"
	"github.com/govm/govm/tap"
	"github.com/govm/govm/virtio"
)

// PCI memory window for device BARs, inside the 32-bit hole below the I/O
// APIC; the DSDT's PCI0 announces it.
const (
	PCIMMIOBase = 0xc000_0000
	PCIMMIOEnd  = 0xfec0_0000
)

// Disk is a virtio-blk disk backed by an image file.
type Disk struct {
	Path     string
	ReadOnly bool
	Serial   string // default: the file name
	// Queues is how many request queues the disk offers; 0: one per
	// vCPU, up to virtio.BlkMaxQueues.
	Queues int
}

// Share is a host directory the guest mounts with
// `mount -t virtiofs TAG DIR`.
type Share struct {
	Dir      string
	Tag      string
	ReadOnly bool
}

// NIC is a virtio-net interface on a TAP device.
type NIC struct {
	// TAP names the host interface: an existing one is attached, a
	// missing one is created (and goes away when govm exits); empty lets
	// the kernel name a new one.
	TAP string
	// MAC is the guest's address; zero derives a stable one from the TAP
	// name.
	MAC [6]byte
	// HostIP, if valid, is set on the host side and the interface is
	// brought up.
	HostIP netip.Prefix
	// Frames, if set, is the host side instead of a TAP: a socket
	// carrying bare Ethernet frames, one per message (framesock), which
	// its owner closes after the machine.
	Frames *FrameLink
	// Guest, if set, is the address the network gives the guest (its
	// DHCP server answers the same), for a guest set up without DHCP.
	Guest *GuestNet
}

// FrameLink is a frame socket as a NIC's host side.
type FrameLink struct {
	Fd   int
	MTU  uint16 // offered to the guest; 0 offers none
	Name string // for messages: "user 10.0.2.15"
}

// GuestNet is a guest's IPv4 configuration on a network govm serves.
type GuestNet struct {
	IP           netip.Prefix
	Gateway, DNS netip.Addr
	MTU          int
}

// addPCIDevice wraps dev in the virtio-PCI transport in the next free
// slot (slots 1 and up, in the order devices are added), its BAR after the
// previous device's.
func (m *Machine) addPCIDevice(name, thread string, dev virtio.Device) error {
	i := len(m.virtioDevs)
	bar := uint64(PCIMMIOBase) + uint64(i)*virtio.BARSize
	slot := i + 1
	plat := &devicePlatform{m: m, dev: dev, thread: thread}
	pd := virtio.NewPCIDevice(name, dev, m.mem, plat, bar)
	if m.cfg.Seeds != nil {
		pd.RecordSeeds(m.cfg.Seeds)
	}
	if !m.pciHost.Attach(slot, pd.Config()) {
		return fmt.Errorf("%s: no free PCI slot", name)
	}
	pd.WireINTx(slotGSI(slot))
	m.virtioDevs = append(m.virtioDevs, pd)
	m.closers = append([]func() error{func() error { pd.Close(); return nil }}, m.closers...)
	return nil
}

// addNICs places a virtio-net device on PCI for each NIC, on its frame
// socket or on the TAP it opens.
func (m *Machine) addNICs() error {
	for i, n := range m.cfg.NICs {
		var backend virtio.NetBackend
		name, mac := "", n.MAC
		if n.Frames != nil {
			backend, name = frameBackend{n.Frames}, n.Frames.Name
		} else {
			t, err := m.openTAP(n)
			if err != nil {
				return err
			}
			backend, name = tapBackend{t}, t.Name()
			if mac == ([6]byte{}) {
				mac = tap.MACFromName(t.Name())
			}
		}
		dev, err := virtio.NewNet(backend, mac)
		if err != nil {
			return fmt.Errorf("--net %s: %w", name, err)
		}
		m.nets = append(m.nets, dev)
		if err := m.addPCIDevice(fmt.Sprintf("virtio-net %d (%s)", i, name), "", dev); err != nil {
			return err
		}
	}
	return nil
}

// openTAP opens (or creates) a NIC's TAP, closed with the machine, and
// configures its host side if asked.
func (m *Machine) openTAP(n NIC) (*tap.TAP, error) {
	t, err := tap.Open(n.TAP, virtio.NetHeaderSize)
	if errors.Is(err, tap.ErrPermission) {
		return nil, fmt.Errorf("--net: %w; or --net user, which needs no privilege", err)
	}
	if err != nil {
		return nil, fmt.Errorf("--net: %w", err)
	}
	m.closers = append(m.closers, t.Close)
	if n.HostIP.IsValid() {
		if err := t.Configure(n.HostIP); err != nil {
			return nil, fmt.Errorf("--net %s: %w", t.Name(), err)
		}
	}
	return t, nil
}

// addDisks opens each disk and places it on the PCI bus.
func (m *Machine) addDisks() error {
	for i, d := range m.cfg.Disks {
		backend, size, serial, err := virtio.OpenDisk(d.Path, d.ReadOnly)
		if err != nil {
			return fmt.Errorf("--disk %s: %w", d.Path, err)
		}
		m.closers = append(m.closers, backend.Close)
		if d.Serial != "" {
			serial = d.Serial
		}
		// By default a request queue per vCPU, as QEMU offers: each
		// vCPU's requests go to their own queue and worker, and none
		// waits behind another vCPU's.
		queues := d.Queues
		if queues == 0 {
			queues = min(m.cfg.CPUs, virtio.BlkMaxQueues)
		}
		blk, err := virtio.NewBlk(backend, size, virtio.BlkOptions{
			ReadOnly: d.ReadOnly, Serial: serial, Discard: true, Queues: queues,
		})
		if err != nil {
			return fmt.Errorf("--disk %s: %w", d.Path, err)
		}
		if err := m.addPCIDevice(fmt.Sprintf("virtio-blk %d", i), fmt.Sprintf("govm-blk%d", i), blk); err != nil {
			return fmt.Errorf("--disk %s: %w", d.Path, err)
		}
	}
	return nil
}

// addShares places a virtio-fs device on PCI for each share, with a
// request queue per vCPU.
func (m *Machine) addShares() error {
	for i, sh := range m.cfg.Shares {
		srv, err := share.New(sh.Dir, sh.ReadOnly)
		if err != nil {
			return fmt.Errorf("--share %s: %w", sh.Dir, err)
		}
		dev, err := virtio.NewFS(sh.Tag, srv, min(m.cfg.CPUs, virtio.FSMaxRequestQueues))
		if err != nil {
			return fmt.Errorf("--share %s: %w", sh.Dir, err)
		}
		if err := m.addPCIDevice(fmt.Sprintf("virtio-fs %d (%s)", i, sh.Tag), fmt.Sprintf("govm-fs%d", i), dev); err != nil {
			return fmt.Errorf("--share %s: %w", sh.Dir, err)
		}
	}
	return nil
}

// addConsole places the multiport console on PCI, if it has ports.
func (m *Machine) addConsole() error {
	if len(m.cfg.Ports) == 0 {
		return nil
	}
	dev, err := virtio.NewConsole(m.cfg.Ports)
	if err != nil {
		return err
	}
	return m.addPCIDevice("virtio-console", "govm-console", dev)
}

// addRNG places virtio-rng on PCI unless the config leaves it out.
func (m *Machine) addRNG() error {
	if m.cfg.NoRNG {
		return nil
	}
	return m.addPCIDevice("virtio-rng", "govm-rng", virtio.NewRNG())
}

// frameBackend is a frame socket as a virtio-net backend: bare Ethernet,
// so no offloads.
type frameBackend struct{ *FrameLink }

func (b frameBackend) Fd() int { return b.FrameLink.Fd }
func (b frameBackend) Caps() virtio.NetBackendCaps {
	return virtio.NetBackendCaps{MTU: b.MTU}
}
func (b frameBackend) SetOffload(virtio.NetOffloads) error { return nil }

// tapBackend is a TAP as a virtio-net backend: the device model knows
// offloads by what the guest negotiated, the TAP by TUNSETOFFLOAD's flags.
type tapBackend struct{ *tap.TAP }

// Caps: a TAP opened with IFF_VNET_HDR carries the header both ways.
func (b tapBackend) Caps() virtio.NetBackendCaps { return virtio.NetBackendCaps{VnetHeader: true} }

// SetOffload tells the TAP which offloaded frames it may hand the guest.
func (b tapBackend) SetOffload(o virtio.NetOffloads) error {
	return b.TAP.SetOffload(tapOffloadFlags(o))
}

// tapOffloadFlags maps offloads to TUNSETOFFLOAD flags (linux/if_tun.h).
func tapOffloadFlags(o virtio.NetOffloads) int {
	f := 0
	for _, m := range []struct {
		on   bool
		flag int
	}{{o.Csum, tap.OffloadCsum}, {o.TSO4, tap.OffloadTSO4}, {o.TSO6, tap.OffloadTSO6}, {o.TSOECN, tap.OffloadTSOECN}} {
		if m.on {
			f |= m.flag
		}
	}
	return f
}
