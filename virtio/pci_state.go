package virtio

import (
	"errors"
	"fmt"
	"strings"
)

// State describes the device in one line for a stopped VM's report: the
// status, and per live queue the driver's and device's ring indexes and
// event indexes as guest memory holds them, with the queue's MSI-X vector
// and whether it is masked or pending. A driver index ahead of the used
// index with no kick expected, or a used index the driver waits on with
// the vector pending, says which side is stuck.
func (p *PCIDevice) State() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "virtio %s: status %#x isr %#x", p.name, p.status, p.irq.peekISR())
	if p.irq.functionMasked() {
		b.WriteString(" msix-function-masked")
	}
	for i := range p.queues {
		pq := &p.queues[i]
		if p.phase != phaseLive || !pq.enabled {
			continue
		}
		q := &pq.q
		availIdx, err1 := p.mem.Uint16(q.Avail + 2)
		usedIdx, err2 := p.mem.Uint16(q.Used + 2)
		usedEvent, err3 := p.mem.Uint16(q.Avail + availHeader + 2*uint64(q.Size))
		availEvent, err4 := p.mem.Uint16(q.availEventAddr())
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			fmt.Fprintf(&b, "; q%d unreadable", i)
			continue
		}
		fmt.Fprintf(&b, "; q%d avail %d used %d used-event %d avail-event %d", i, availIdx, usedIdx, usedEvent, availEvent)
		v, masked, pending := p.irq.vectorState(i)
		if v == noVector {
			b.WriteString(" no-vector")
			continue
		}
		fmt.Fprintf(&b, " vec %d", v)
		if masked {
			b.WriteString(" masked")
		}
		if pending {
			b.WriteString(" pending")
		}
	}
	return b.String()
}
