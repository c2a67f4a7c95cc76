package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/govm/govm/mem"
)

// virtio-console with multiport (virtio 1.2, 5.3): named byte-stream
// ports, each a pair of queues, announced to the driver on a control
// queue. No port is a console: the guest sees each as /dev/vportNpM with
// its name in sysfs, a plain character device that passes bytes as they
// are (no line discipline).
const (
	TypeConsole = 3

	ConsoleFeatureMultiport = 1 << 1 // VIRTIO_CONSOLE_F_MULTIPORT

	// ConsoleMaxPorts bounds the ports a device offers, and
	// ConsoleNameMax a port's name (sent in one PORT_NAME message).
	ConsoleMaxPorts = 16
	ConsoleNameMax  = 64

	consoleQueueMax = 128
	// Queues (5.3.2): port 0's receive and transmit, then the control
	// receive (device to driver) and transmit queues, then two per port
	// from port 1.
	consoleCtrlRx = 2
	consoleCtrlTx = 3

	// Config space (5.3.4): cols u16, rows u16, max_nr_ports u32.
	consoleCfgMaxPorts = 4
	consoleCfgSize     = 12

	// Control messages (5.3.6.2): le32 id, le16 event, le16 value.
	consoleCtrlSize       = 8
	consoleDeviceReady    = 0
	consoleDeviceAdd      = 1
	consolePortReady      = 3
	consolePortOpen       = 6
	consolePortName       = 7
	consoleCtrlQueueLimit = 4 * ConsoleMaxPorts // pending messages to the driver
	consolePumpBuffer     = 64 << 10
)

// ConsolePort is one port: In, if set, is read and its bytes given to the
// guest; its end (EOF or an error) closes the port from the host's side,
// which the guest reads as end of file. Out, if set, receives what the
// guest writes, in order; a port without Out drops it.
type ConsolePort struct {
	Name string
	In   io.Reader
	Out  io.Writer
}

// Console is a multiport virtio-console device.
type Console struct {
	ports []consolePort

	mu        sync.Mutex // guards what follows and the control queues
	mem       *mem.Memory
	interrupt func(int)
	queues    []*Queue
	ctrlOut   [][]byte // control messages waiting for the driver's buffers
	pumping   bool
	ctrlBuf   [consoleCtrlSize]byte
}

// consolePort is a port's state: whether each side has it open, and the
// wake-up for its pump when the driver posts receive buffers.
type consolePort struct {
	ConsolePort
	guestOpen bool
	hostOpen  bool
	wake      chan struct{}
}

// NewConsole returns a device with the given ports (port i has id i).
func NewConsole(ports []ConsolePort) (*Console, error) {
	if len(ports) == 0 || len(ports) > ConsoleMaxPorts {
		return nil, fmt.Errorf("virtio-console: %d ports: 1 to %d", len(ports), ConsoleMaxPorts)
	}
	c := &Console{ports: make([]consolePort, len(ports))}
	for i, p := range ports {
		if p.Name == "" || len(p.Name) > ConsoleNameMax {
			return nil, fmt.Errorf("virtio-console: port %d: name must be 1 to %d bytes", i, ConsoleNameMax)
		}
		c.ports[i] = consolePort{ConsolePort: p, hostOpen: true, wake: make(chan struct{}, 1)}
	}
	return c, nil
}

// portQueues returns port i's receive and transmit queue indices.
func portQueues(i int) (rx, tx int) {
	if i == 0 {
		return 0, 1
	}
	return 2 + 2*i, 3 + 2*i
}

// queuePort returns the port a queue belongs to and whether it is that
// port's receive queue; -1 for the control queues.
func queuePort(q int) (port int, rx bool) {
	switch {
	case q < 2:
		return 0, q == 0
	case q < 4:
		return -1, false
	}
	return (q - 2) / 2, q%2 == 0
}

func (c *Console) Type() uint16               { return TypeConsole }
func (c *Console) Features() uint64           { return ConsoleFeatureMultiport }
func (c *Console) NumQueues() int             { return 2 * (len(c.ports) + 1) }
func (c *Console) QueueMax() uint16           { return consoleQueueMax }
func (c *Console) WriteConfig(uint64, []byte) {}

func (c *Console) ReadConfig(off uint64, data []byte) {
	var cfg [consoleCfgSize]byte
	binary.LittleEndian.PutUint32(cfg[consoleCfgMaxPorts:], uint32(len(c.ports)))
	clear(data)
	if off < consoleCfgSize {
		copy(data, cfg[off:])
	}
}

// Activate takes the queues; the driver must have negotiated multiport
// and enabled the control queues. Each port with input gets a pump, once
// for the device's life, reading its input.
func (c *Console) Activate(m *mem.Memory, features uint64, queues []*Queue, interrupt func(int)) error {
	if features&ConsoleFeatureMultiport == 0 {
		return errors.New("virtio-console: the driver did not take multiport")
	}
	if len(queues) != c.NumQueues() || queues[consoleCtrlRx] == nil || queues[consoleCtrlTx] == nil {
		return errors.New("virtio-console: the control queues are not enabled")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mem, c.interrupt, c.queues = m, interrupt, queues
	c.ctrlOut = c.ctrlOut[:0]
	for i := range c.ports {
		c.ports[i].guestOpen = false
	}
	if !c.pumping {
		c.pumping = true
		for i := range c.ports {
			if c.ports[i].In != nil {
				go c.pump(i)
			}
		}
	}
	return nil
}

func (c *Console) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mem, c.interrupt, c.queues = nil, nil, nil
	for i := range c.ports {
		c.ports[i].guestOpen = false
	}
}

// Process serves a notification on queue q.
func (c *Console) Process(q int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queues == nil || q < 0 || q >= len(c.queues) || c.queues[q] == nil {
		return nil
	}
	switch port, rx := queuePort(q); {
	case q == consoleCtrlRx:
		return c.flushCtrl()
	case q == consoleCtrlTx:
		return c.controlFromDriver()
	case rx:
		// New receive buffers: the port's pump may go on.
		select {
		case c.ports[port].wake <- struct{}{}:
		default:
		}
		return nil
	default:
		return c.transmit(port, q)
	}
}

// transmit hands everything the driver wrote on port's transmit queue to
// the port's output, in order. The driver's write returns when its
// buffer is used, so what the guest wrote has reached Out by then.
func (c *Console) transmit(port, qi int) error {
	m, out := c.mem, c.ports[port].Out
	return c.drain(qi, func(chain []Desc) (uint32, error) {
		for _, d := range chain {
			if d.Write {
				continue
			}
			b, err := m.Slice(d.Addr, uint64(d.Len))
			if err != nil {
				return 0, err
			}
			if out != nil {
				// A failed write (a closed pipe) drops the bytes; the
				// guest goes on, as it would with a hung-up terminal.
				_, _ = out.Write(b)
			}
		}
		return 0, nil
	})
}

// drain serves every available chain on queue qi.
func (c *Console) drain(qi int, serve func([]Desc) (uint32, error)) error {
	return c.queues[qi].ServeAvailable(c.mem, qi, c.interrupt, serve)
}

// controlFromDriver acts on the driver's control messages: it answers
// DEVICE_READY by adding every port, PORT_READY by naming the port and
// opening the host side, and records the guest opening or closing ports.
func (c *Console) controlFromDriver() error {
	m := c.mem
	err := c.drain(consoleCtrlTx, func(chain []Desc) (uint32, error) {
		buf := c.ctrlBuf[:]
		got := 0
		for _, d := range chain {
			if d.Write || got == len(buf) {
				continue
			}
			n := min(int(d.Len), len(buf)-got)
			if err := m.ReadAt(buf[got:got+n], d.Addr); err != nil {
				return 0, err
			}
			got += n
		}
		if got < consoleCtrlSize {
			return 0, nil // too short to mean anything: ignored
		}
		c.control(binary.LittleEndian.Uint32(buf), binary.LittleEndian.Uint16(buf[4:]), binary.LittleEndian.Uint16(buf[6:]))
		return 0, nil
	})
	if err != nil {
		return err
	}
	return c.flushCtrl()
}

// control acts on one message from the driver; messages naming a port
// the device does not have are ignored.
func (c *Console) control(id uint32, event, value uint16) {
	switch event {
	case consoleDeviceReady:
		if value == 1 {
			for i := range c.ports {
				c.queueCtrl(uint32(i), consoleDeviceAdd, 0, "")
			}
		}
	case consolePortReady:
		if int(id) < len(c.ports) && value == 1 {
			p := &c.ports[id]
			c.queueCtrl(id, consolePortName, 1, p.Name)
			if p.hostOpen {
				c.queueCtrl(id, consolePortOpen, 1, "")
			}
		}
	case consolePortOpen:
		if int(id) < len(c.ports) {
			p := &c.ports[id]
			p.guestOpen = value == 1
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
	}
}

// queueCtrl adds a message for the driver; a driver that never posts
// control buffers cannot make the list grow past its bound.
func (c *Console) queueCtrl(id uint32, event, value uint16, name string) {
	if len(c.ctrlOut) >= consoleCtrlQueueLimit {
		return
	}
	msg := make([]byte, consoleCtrlSize, consoleCtrlSize+len(name))
	binary.LittleEndian.PutUint32(msg[0:], id)
	binary.LittleEndian.PutUint16(msg[4:], event)
	binary.LittleEndian.PutUint16(msg[6:], value)
	c.ctrlOut = append(c.ctrlOut, append(msg, name...))
}

// flushCtrl moves pending control messages into the driver's control
// receive buffers, one message per buffer.
func (c *Console) flushCtrl() error {
	q, m := c.queues[consoleCtrlRx], c.mem
	if q == nil || len(c.ctrlOut) == 0 {
		return nil
	}
	old := q.UsedIdx()
	sent := 0
	for sent < len(c.ctrlOut) {
		head, chain, ok, err := q.Pop(m)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		msg := c.ctrlOut[sent]
		n, err := writeChain(m, chain, msg)
		if err != nil {
			return err
		}
		if err := q.PushUsed(m, head, n); err != nil {
			return err
		}
		if int(n) == len(msg) {
			sent++
		}
		// A buffer too small for the message is returned with what
		// fitted; the message waits for the next one.
	}
	c.ctrlOut = c.ctrlOut[:copy(c.ctrlOut, c.ctrlOut[sent:])]
	q.SetAvailEvent(m)
	if q.UsedIdx() != old && q.NeedsInterrupt(m, old) {
		c.interrupt(consoleCtrlRx)
	}
	return nil
}

// writeChain copies src into the chain's writable buffers and returns
// the bytes written.
func writeChain(m *mem.Memory, chain []Desc, src []byte) (uint32, error) {
	var n uint32
	for _, d := range chain {
		if !d.Write || len(src) == 0 {
			continue
		}
		k := min(int(d.Len), len(src))
		if err := m.WriteAt(src[:k], d.Addr); err != nil {
			return 0, err
		}
		src = src[k:]
		n += uint32(k)
	}
	return n, nil
}

// pump reads port i's input and hands it to the guest as receive buffers
// come, once the guest has opened the port (the driver drops data for a
// port nobody opened). At the input's end it closes the host side.
func (c *Console) pump(i int) {
	p := &c.ports[i]
	buf := make([]byte, consolePumpBuffer)
	for {
		n, err := p.In.Read(buf)
		data := buf[:n]
		for len(data) > 0 {
			c.mu.Lock()
			k := c.receive(i, data)
			c.mu.Unlock()
			data = data[k:]
			if len(data) > 0 {
				<-p.wake
			}
		}
		if err != nil {
			c.mu.Lock()
			p.hostOpen = false
			if c.queues != nil {
				c.queueCtrl(uint32(i), consolePortOpen, 0, "")
				_ = c.flushCtrl()
			}
			c.mu.Unlock()
			return
		}
	}
}

// receive copies as much of data as the port's receive buffers take and
// returns how much; nothing while the device is inactive or the guest
// has not opened the port. A broken queue takes nothing until the driver
// resets the device and opens the port again.
func (c *Console) receive(i int, data []byte) int {
	if c.queues == nil || !c.ports[i].guestOpen {
		return 0
	}
	rx, _ := portQueues(i)
	q, m := c.queues[rx], c.mem
	if q == nil {
		return 0
	}
	old := q.UsedIdx()
	done := 0
	for done < len(data) {
		head, chain, ok, err := q.Pop(m)
		if err != nil || !ok {
			break
		}
		n, err := writeChain(m, chain, data[done:])
		if err != nil {
			n = 0
		}
		if err := q.PushUsed(m, head, n); err != nil {
			break
		}
		done += int(n)
		if n == 0 {
			break // a chain with no writable room: wait for others
		}
	}
	q.SetAvailEvent(m)
	if q.UsedIdx() != old && q.NeedsInterrupt(m, old) {
		c.interrupt(rx)
	}
	return done
}
