package main

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestWatchFor(t *testing.T) {
	for _, tc := range []struct {
		name, stream string
		want         bool
	}{
		{"absent", "booting...\nlogin:", false},
		{"whole", "x\nGOVM-AGENT-START\n", true},
		{"first byte", "GOVM-AGENT-START", true},
		{"partial only", "GOVM-AGENT-STAR", false},
		{"twice", "GOVM-AGENT-START GOVM-AGENT-START", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// OneByteReader splits the marker across every read.
			var out bytes.Buffer
			calls := 0
			watchFor(iotest.OneByteReader(strings.NewReader(tc.stream)), &out, []byte("GOVM-AGENT-START"), func() { calls++ })
			if got := calls == 1; got != tc.want || calls > 1 {
				t.Errorf("matched %d times, want match %v", calls, tc.want)
			}
			if out.String() != tc.stream {
				t.Errorf("copied %q, want %q", out.String(), tc.stream)
			}
		})
	}
}

func TestParseKB(t *testing.T) {
	for in, want := range map[string]int64{"   1234 kB": 1234, "\t0 kB": 0, " 7": 7} {
		if got, err := parseKB(in); err != nil || got != want {
			t.Errorf("parseKB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseKB(" x kB"); err == nil {
		t.Error("parseKB accepted a non-number")
	}
}

// TestRunToMarker runs real processes: one that shows the marker and
// stays (it is measured and killed), one that exits first, one that never
// shows it.
func TestRunToMarker(t *testing.T) {
	var log bytes.Buffer
	// The shell itself stays (measured and killed); its sleep lets go of
	// the output pipe, so killing the shell ends the stream.
	r, err := runToMarker(&log, "READY", 10*time.Second, []string{"sh", "-c", "echo booting; sleep 0.1; echo READY; sleep 60 >/dev/null 2>&1 & wait"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ms < 100 || r.peakKB <= 0 || r.guestKB <= 0 || r.guestKB > r.peakKB {
		t.Errorf("implausible figures %+v", r)
	}
	if !strings.Contains(log.String(), "booting\nREADY") {
		t.Errorf("log %q", log.String())
	}
	if _, err := runToMarker(&log, "READY", 10*time.Second, []string{"sh", "-c", "exit 3"}); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("exit before marker: %v", err)
	}
	start := time.Now()
	if _, err := runToMarker(&log, "READY", 200*time.Millisecond, []string{"sleep", "60"}); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("no marker: %v after %v", err, time.Since(start))
	}
}
