package main

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingWriter records each write it gets.
type countingWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	return w.buf.Write(p)
}

func (w *countingWriter) get() (string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String(), w.writes
}

// TestSinkBatches feeds a boot log a byte at a time, as the UART does: it
// must come out whole and in order in a handful of writes, and a prompt
// without a newline must still appear within the flush delay.
func TestSinkBatches(t *testing.T) {
	w := &countingWriter{}
	s := &consoleSink{outs: []io.Writer{w}}
	log := strings.Repeat("[    0.000000] a line of a kernel's boot log\n", 200) // 9 KiB
	for i := range len(log) {
		s.Write([]byte{log[i]})
	}
	s.Flush()
	got, writes := w.get()
	if got != log {
		t.Fatalf("output differs from input (%d of %d bytes)", len(got), len(log))
	}
	// A write per byte would be 9000; the timer may cut a few batches
	// short on a loaded machine.
	if writes > 50 {
		t.Errorf("%d writes for %d bytes, want batches", writes, len(log))
	}
	s.Write([]byte("login: "))
	deadline := time.Now().Add(2 * time.Second)
	for {
		if out, _ := w.get(); strings.HasSuffix(out, "login: ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a prompt without a newline was never written")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSinkEndBurst: once the guest ends its bursts (an IER write, as
// Linux's 8250 driver makes after each message), each burst is written
// whole when it ends, a prompt included, and no timer writes anything in
// between.
func TestSinkEndBurst(t *testing.T) {
	w := &countingWriter{}
	s := &consoleSink{outs: []io.Writer{w}}
	s.EndBurst() // the driver's first IER write, before any output
	for _, msg := range []string{"[    0.000000] one message\n", "[    0.000001] two lines\nof one message\n", "login: "} {
		for i := range len(msg) {
			s.Write([]byte{msg[i]})
		}
		time.Sleep(3 * flushDelay) // a timer, if any, would have written by now
		if out, _ := w.get(); strings.HasSuffix(out, msg) {
			t.Fatalf("%q written before its burst ended", msg)
		}
		s.EndBurst()
		if out, _ := w.get(); !strings.HasSuffix(out, msg) {
			t.Fatalf("%q not written when its burst ended (have %q)", msg, out)
		}
	}
	if _, writes := w.get(); writes != 3 {
		t.Errorf("%d writes for 3 bursts, want 3", writes)
	}
}

// TestSinkMatchesBeforeFlush: matching sees every byte as it comes, not
// when it is written out.
func TestSinkMatchesBeforeFlush(t *testing.T) {
	var matched []string
	s := &consoleSink{outs: []io.Writer{&countingWriter{}}, expect: regexp.MustCompile(`^READY$`),
		onMatch: func(k matchKind, line string) { matched = append(matched, line) }}
	for _, b := range []byte("boot\nREADY\nmore\n") {
		s.Write([]byte{b})
	}
	if len(matched) != 1 || matched[0] != "READY" {
		t.Errorf("matched %q", matched)
	}
	if tail := s.Tail(); !strings.Contains(tail, "boot") || !strings.Contains(tail, "more") {
		t.Errorf("tail %q", tail)
	}
	s.Flush()
}
