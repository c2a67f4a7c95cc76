package virtio

import "testing"

// TestNextStatus: the driver's status writes follow the order of device
// initialization (virtio 1.2, 3.1.1), never clear a bit (2.1.1), and
// cannot touch DEVICE_NEEDS_RESET.
func TestNextStatus(t *testing.T) {
	const (
		ack   = StatusAcknowledge
		drv   = StatusDriver
		fok   = StatusFeaturesOK
		dok   = StatusDriverOK
		nr    = StatusNeedsReset
		fail  = StatusFailed
		setup = ack | drv | fok
	)
	tests := []struct {
		name     string
		cur, s   uint8
		want     uint8
		accepted bool
	}{
		{"acknowledge", 0, ack, ack, true},
		{"driver after acknowledge", ack, ack | drv, ack | drv, true},
		{"features ok", ack | drv, setup, setup, true},
		{"driver ok", setup, setup | dok, setup | dok, true},
		{"all steps in one write", 0, setup | dok, setup | dok, true},
		{"same status again", setup, setup, setup, true},
		{"failed at any time", ack, ack | fail, ack | fail, true},
		{"failed first", 0, fail, fail, true},
		{"driver without acknowledge", 0, drv, 0, false},
		{"features ok without driver", ack, ack | fok, ack, false},
		{"driver ok without features ok", ack | drv, ack | drv | dok, ack | drv, false},
		{"clearing a bit", setup, ack | drv, setup, false},
		{"unknown bits", 0, 0x30 | ack, 0, false},
		{"every bit", 0, 0xff, 0, false},
		{"needs reset is the device's", setup | dok | nr, setup | dok, setup | dok | nr, true},
		{"needs reset cannot be set", setup, setup | nr, setup, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := nextStatus(tt.cur, tt.s)
			if got != tt.want || ok != tt.accepted {
				t.Errorf("nextStatus(%#x, %#x) = %#x, %v; want %#x, %v", tt.cur, tt.s, got, ok, tt.want, tt.accepted)
			}
		})
	}
}
