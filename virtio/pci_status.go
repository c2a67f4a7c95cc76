package virtio

// Device status bits (virtio 1.2, 2.1).
const (
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 64
	StatusFailed      = 128
)

// statusRules lists, for each bit a driver may set, the bits that must
// already be set or set in the same write: the order of device
// initialization (3.1.1). FAILED may be set at any time (2.1.1).
var statusRules = [...]struct{ bit, needs uint8 }{
	{StatusAcknowledge, 0},
	{StatusDriver, StatusAcknowledge},
	{StatusFeaturesOK, StatusAcknowledge | StatusDriver},
	{StatusDriverOK, StatusAcknowledge | StatusDriver | StatusFeaturesOK},
	{StatusFailed, 0},
}

// nextStatus is the status after a driver writes s (non-zero; zero is a
// reset) to a device whose status is cur, and whether the write is a
// valid transition. A driver must not clear a bit (2.1.1), set a bit
// before the ones that precede it (3.1.1) or set a bit the spec does not
// give it; DEVICE_NEEDS_RESET is the device's to set and stays as it is.
// A refused write leaves the status unchanged.
func nextStatus(cur, s uint8) (uint8, bool) {
	kept := cur & StatusNeedsReset
	s &^= StatusNeedsReset
	if cur&^StatusNeedsReset&^s != 0 {
		return cur, false // clears a bit
	}
	added := s &^ cur
	for _, r := range statusRules {
		if added&r.bit != 0 {
			if s&r.needs != r.needs {
				return cur, false
			}
			added &^= r.bit
		}
	}
	if added != 0 {
		return cur, false // a bit no driver sets
	}
	return s | kept, true
}

// setStatus runs the device status state machine; p.mu is held.
func (p *PCIDevice) setStatus(s uint8) {
	if s == 0 {
		p.resetLocked()
		return
	}
	next, ok := nextStatus(p.status, s)
	if !ok {
		p.warn("virtio-pci: device status transition refused", "from", p.status, "to", s)
		return
	}
	added := next &^ p.status
	if added&StatusFeaturesOK != 0 {
		// Only offered features, and VERSION_1, may be accepted: the
		// device leaves FEATURES_OK clear, for the driver to read (3.1.1).
		if p.drvFeatures&^p.offered() != 0 || p.drvFeatures&FeatureVersion1 == 0 {
			next &^= StatusFeaturesOK
			added &^= StatusFeaturesOK
			if next&StatusDriverOK != 0 {
				return // DRIVER_OK in the same write cannot stand either
			}
		}
	}
	p.status = next
	if added&StatusDriverOK != 0 && p.phase == phaseConfig {
		if err := p.activateLocked(); err != nil {
			p.warn("virtio-pci: activation failed", "err", err)
			p.needsResetLocked()
		}
	}
}
