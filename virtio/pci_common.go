package virtio

// Common configuration registers (virtio 1.2, 4.1.4.3): struct
// virtio_pci_common_cfg, at offCommon in BAR 0.
const (
	ccDeviceFeatureSel = 0x00
	ccDeviceFeature    = 0x04
	ccDriverFeatureSel = 0x08
	ccDriverFeature    = 0x0c
	ccConfigMSIX       = 0x10
	ccNumQueues        = 0x12
	ccStatus           = 0x14
	ccConfigGen        = 0x15
	ccQueueSelect      = 0x16
	ccQueueSize        = 0x18
	ccQueueMSIX        = 0x1a
	ccQueueEnable      = 0x1c
	ccQueueNotifyOff   = 0x1e
	ccQueueDesc        = 0x20
	ccQueueDriver      = 0x28
	ccQueueDevice      = 0x30

	// featureWords is how many 32-bit feature words the device has.
	featureWords = 2
)

// selected is the queue queue_select names, nil if none.
func (p *PCIDevice) selected() *pciQueue {
	if int(p.queueSel) < len(p.queues) {
		return &p.queues[p.queueSel]
	}
	return nil
}

// readCommon serves a read of the common configuration; p.mu is held.
func (p *PCIDevice) readCommon(off uint64, data []byte) {
	q := p.selected()
	switch off {
	case ccDeviceFeatureSel:
		putN(data, uint64(p.devFeatSel))
	case ccDeviceFeature:
		if p.devFeatSel < featureWords {
			putN(data, p.offered()>>(32*p.devFeatSel)&0xffffffff)
		}
	case ccDriverFeatureSel:
		putN(data, uint64(p.drvFeatSel))
	case ccDriverFeature:
		if p.drvFeatSel < featureWords {
			putN(data, p.drvFeatures>>(32*p.drvFeatSel)&0xffffffff)
		}
	case ccConfigMSIX:
		putN(data, uint64(p.irq.configVector()))
	case ccNumQueues:
		putN(data, uint64(len(p.queues)))
	case ccStatus:
		putN(data, uint64(p.status))
	case ccConfigGen:
		putN(data, uint64(p.configGen))
	case ccQueueSelect:
		putN(data, uint64(p.queueSel))
	case ccQueueSize, ccQueueMSIX, ccQueueEnable, ccQueueNotifyOff, ccQueueDesc, ccQueueDesc + 4,
		ccQueueDriver, ccQueueDriver + 4, ccQueueDevice, ccQueueDevice + 4:
		if q == nil {
			return
		}
		switch off {
		case ccQueueSize:
			putN(data, uint64(q.size))
		case ccQueueMSIX:
			putN(data, uint64(p.irq.queueVector(int(p.queueSel))))
		case ccQueueEnable:
			if q.enabled {
				putN(data, 1)
			}
		case ccQueueNotifyOff:
			putN(data, uint64(p.queueSel))
		case ccQueueDesc, ccQueueDesc + 4:
			putN(data, q.q.Desc>>(8*(off-ccQueueDesc)))
		case ccQueueDriver, ccQueueDriver + 4:
			putN(data, q.q.Avail>>(8*(off-ccQueueDriver)))
		case ccQueueDevice, ccQueueDevice + 4:
			putN(data, q.q.Used>>(8*(off-ccQueueDevice)))
		}
	}
}

// offered is what the device offers: its own features plus the transport's.
func (p *PCIDevice) offered() uint64 {
	return p.dev.Features() | FeatureVersion1 | FeatureEventIdx | FeatureIndirectDesc
}

// setAddr updates the low or high half of a 64-bit ring address.
func setAddr(dst *uint64, off uint64, v uint64, n int) {
	shift := 8 * off
	mask := uint64(1)<<(8*uint(n)) - 1
	if n >= 8 {
		mask = ^uint64(0)
	}
	*dst = *dst&^(mask<<shift) | (v&mask)<<shift
}

// writeCommon serves a write to the common configuration; p.mu is held.
// While a reset is in progress every write is ignored.
func (p *PCIDevice) writeCommon(off uint64, data []byte) {
	if p.phase == phaseResetting {
		return
	}
	v := uintN(data)
	q := p.selected()
	// Queue configuration is frozen once the driver says DRIVER_OK
	// (4.1.4.3.2); writes after that are ignored.
	queueCfg := p.phase == phaseConfig && q != nil && p.status&StatusFeaturesOK != 0
	switch off {
	case ccDeviceFeatureSel:
		p.devFeatSel = uint32(v)
	case ccDriverFeatureSel:
		p.drvFeatSel = uint32(v)
	case ccDriverFeature:
		if p.drvFeatSel < featureWords && p.status&StatusFeaturesOK == 0 {
			shift := 32 * p.drvFeatSel
			p.drvFeatures = p.drvFeatures&^(0xffffffff<<shift) | (v&0xffffffff)<<shift
		}
	case ccConfigMSIX:
		p.irq.setConfigVector(uint16(v))
	case ccStatus:
		p.setStatus(uint8(v))
	case ccQueueSelect:
		p.queueSel = uint16(v)
	case ccQueueSize:
		if queueCfg {
			q.size = acceptedQueueSize(uint16(v), p.dev.QueueMax())
		}
	case ccQueueMSIX:
		if q != nil && p.phase == phaseConfig {
			p.irq.setQueueVector(int(p.queueSel), uint16(v))
		}
	case ccQueueEnable:
		if queueCfg && v == 1 {
			q.enabled = true
		}
	case ccQueueDesc, ccQueueDesc + 4:
		if queueCfg {
			setAddr(&q.q.Desc, off-ccQueueDesc, v, len(data))
		}
	case ccQueueDriver, ccQueueDriver + 4:
		if queueCfg {
			setAddr(&q.q.Avail, off-ccQueueDriver, v, len(data))
		}
	case ccQueueDevice, ccQueueDevice + 4:
		if queueCfg {
			setAddr(&q.q.Used, off-ccQueueDevice, v, len(data))
		}
	}
}

// acceptedQueueSize is what a queue_size write sets: the size written if
// it is a power of two no larger than the device's maximum (a split
// queue's size is a power of two, virtio 1.2 2.7), and otherwise 0, the
// size of a queue that is unavailable (4.1.4.3). A driver reads back
// what the device took, and enabling the queue at size 0 makes the
// device need reset.
func acceptedQueueSize(v, max uint16) uint16 {
	if v == 0 || v > max || v&(v-1) != 0 {
		return 0
	}
	return v
}
