package machine

import (
	"strings"
	"testing"

	"github.com/govm/govm/hostinfo"
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
		{"hardware host", hw, nil, tuning{xsave: true, hugePages: true, batchIO: true}, ""},
		{"under QEMU TCG", tcg, nil, tuning{xsave: false, hugePages: true, batchIO: true}, ""},
		{"xsave forced on under TCG", tcg, map[string]string{envXSave: "on"}, tuning{xsave: true, hugePages: true, batchIO: true}, ""},
		{"huge pages forced off under TCG", tcg, map[string]string{envHugePages: "off"}, tuning{batchIO: true}, ""},
		{"huge pages forced off", hw, map[string]string{envHugePages: "off"}, tuning{xsave: true, batchIO: true}, ""},
		{"normal scheduling", hw, map[string]string{envIOSched: "normal"}, tuning{xsave: true, hugePages: true}, ""},
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
