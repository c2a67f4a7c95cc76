package e2e

import (
	"strings"
	"testing"
)

// TestL1Script: the case script for each way a case runs govm, line for
// line as scripts/l1-init runs it.
func TestL1Script(t *testing.T) {
	tail := "sync\ncat /tmp/console.txt\necho GOVM-METRICS-BEGIN; cat /tmp/metrics.json 2>/dev/null; echo; echo GOVM-METRICS-END\n"
	tests := []struct {
		name string
		s    l1Script
		want string
	}{
		{"plain", l1Script{Dir: "/case", Mode: "plain", Govm: "govm run '--cpus' '1'"},
			"mkdir -p /case\ncd /tmp\ngovm run '--cpus' '1' </dev/null >/tmp/console.txt 2>&1\necho GOVM-RC=$?\n" + tail},
		{"kill, with environment, directory, before and after", l1Script{
			Dir: "/case", Mode: "kill", Govm: "govm run", Env: []string{"A=1", "B=it's"}, Cd: "/mod",
			KillAfter: "GOVM-WRITING", Before: "truncate -s 1M /case/d.img", After: "echo done"},
			"mkdir -p /case\ncd /tmp\ntruncate -s 1M /case/d.img\n: >/tmp/console.txt\n" +
				"(export 'A=1'\nexport 'B=it'\\''s'\ncd '/mod' && exec govm run) </dev/null >/tmp/console.txt 2>&1 &\npid=$!\n" +
				"while kill -0 $pid 2>/dev/null && ! grep -qF 'GOVM-WRITING' /tmp/console.txt; do sleep 1; done\n" +
				"kill -KILL $pid 2>/dev/null\nwait $pid\necho GOVM-RC=$?\n" + tail + "echo done\n"},
		{"input", l1Script{Dir: "/case", Mode: "input", Govm: "govm run", InputAfter: "login:", Input: "echo hi"},
			"mkdir -p /case\ncd /tmp\ntrap '' PIPE\nmkfifo /tmp/stdin\n: >/tmp/console.txt\n" +
				"govm run </tmp/stdin >/tmp/console.txt 2>&1 &\npid=$!\nexec 3>/tmp/stdin\n" +
				"while kill -0 $pid 2>/dev/null && ! grep -qF 'login:' /tmp/console.txt; do sleep 1; done\n" +
				"printf '%s\\n' 'echo hi' >&3\nwait $pid\necho GOVM-RC=$?\nexec 3>&-\n" + tail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.s.MarkerRC, tt.s.MarkerMetrics = markerRC, markerMetrics
			var b strings.Builder
			if err := l1ScriptTmpl.Execute(&b, tt.s); err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.want {
				t.Errorf("script:\n%s\nwant:\n%s", b.String(), tt.want)
			}
		})
	}
}
