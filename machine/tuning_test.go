package machine

import (
	"strings"
	"testing"
	"time"

	"github.com/govm/govm/hostinfo"
	"github.com/govm/govm/osthread"
)

func TestDecideTuning(t *testing.T) {
	hw := hostinfo.Facts{VMX: true, ModelName: "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"}
	tcg := hostinfo.Facts{SVM: true, ModelName: "QEMU TCG CPU version 2.5+"}
	tests := []struct {
		name    string
		host    hostinfo.Facts
		env     map[string]string
		want    tuning
		wantErr string
	}{
		{"hardware host", hw, nil, tuning{xsave: true, hugePages: true, batchIO: true, yieldEvery: osthread.YieldEvery}, ""},
		{"under QEMU TCG", tcg, nil, tuning{xsave: false, hugePages: true, batchIO: true, yieldEvery: osthread.YieldEvery}, ""},
		{"xsave forced on under TCG", tcg, map[string]string{envXSave: "on"}, tuning{xsave: true, hugePages: true, batchIO: true, yieldEvery: osthread.YieldEvery}, ""},
		{"huge pages forced off under TCG", tcg, map[string]string{envHugePages: "off"}, tuning{batchIO: true, yieldEvery: osthread.YieldEvery}, ""},
		{"huge pages forced off", hw, map[string]string{envHugePages: "off"}, tuning{xsave: true, batchIO: true, yieldEvery: osthread.YieldEvery}, ""},
		{"yielder off", hw, map[string]string{envYield: "off"}, tuning{xsave: true, hugePages: true, batchIO: true, yieldEvery: -1}, ""},
		{"yielder every 1ms", hw, map[string]string{envYield: "1ms"}, tuning{xsave: true, hugePages: true, batchIO: true, yieldEvery: time.Millisecond}, ""},
		{"bad yield", hw, map[string]string{envYield: "-5ms"}, tuning{}, "GOVM_DEBUG_YIELD"},
		{"normal scheduling", hw, map[string]string{envIOSched: "normal"}, tuning{xsave: true, hugePages: true, yieldEvery: osthread.YieldEvery}, ""},
		{"bad value", hw, map[string]string{envIOSched: "fifo"}, tuning{}, "GOVM_DEBUG_IO_SCHED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decideTuning(tt.host, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
