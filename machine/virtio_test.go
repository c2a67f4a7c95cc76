package machine

import (
	"testing"

	"github.com/govm/govm/tap"
	"github.com/govm/govm/virtio"
)

func TestTapOffloadFlags(t *testing.T) {
	tests := []struct {
		o    virtio.NetOffloads
		want int
	}{
		{virtio.NetOffloads{}, 0},
		{virtio.NetOffloads{Csum: true}, tap.OffloadCsum},
		{virtio.NetOffloads{Csum: true, TSO4: true, TSO6: true, TSOECN: true}, tap.OffloadCsum | tap.OffloadTSO4 | tap.OffloadTSO6 | tap.OffloadTSOECN},
	}
	for _, tt := range tests {
		if got := tapOffloadFlags(tt.o); got != tt.want {
			t.Errorf("tapOffloadFlags(%+v) = %#x, want %#x", tt.o, got, tt.want)
		}
	}
}
