package main

import (
	"io"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Console matches, in order of precedence.
type matchKind int

const (
	matchNone matchKind = iota
	matchExpect
	matchFailOn
	matchPanic
)

// kernelPanic is the line a Linux kernel prints when it panics.
var kernelPanic = regexp.MustCompile(`Kernel panic - not syncing`)

// Bounds on what the sink remembers.
const (
	maxLineBytes = 4096 // a longer line is matched in pieces
	tailLines    = 30   // lines kept for the timeout report
)

// Output batching: the UART hands over one byte per guest OUT, and one
// write(2) per byte made a Linux boot log cost a system call (and a wake
// of the reader) per byte. The sink writes what it holds when the guest
// ends a burst (the UART's EndBurst: Linux ends each with a write to
// IER) or at flushBytes, in the vCPU's thread: a boot log costs one write
// per message and wakes no other thread. A guest that has never ended a
// burst so (firmware, a bare test program) gets a timer instead: output
// is written flushDelay after its first unwritten byte, so a human or a
// script sees a prompt within milliseconds.
const (
	flushBytes = 4096
	flushDelay = 2 * time.Millisecond
)

// consoleSink receives the guest's console output: it copies it to the
// terminal and the console log, keeps the last lines, and reports the first
// line that matches --expect, --fail-on or a kernel panic. Output is
// batched (flushBytes, flushDelay); Flush writes what is held.
type consoleSink struct {
	mu      sync.Mutex
	outs    []io.Writer
	pending []byte
	timer   *time.Timer // flushes pending without bursts; armed while pending is not empty
	bursts  bool        // the guest ends its bursts (EndBurst): no timer
	line    []byte
	tail    []string
	expect  *regexp.Regexp
	failOn  *regexp.Regexp
	onMatch func(matchKind, string)
	matched bool
}

// Flush writes the output held back.
func (s *consoleSink) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushLocked()
}

func (s *consoleSink) flushLocked() {
	if len(s.pending) == 0 {
		return
	}
	for _, w := range s.outs {
		_, _ = w.Write(s.pending)
	}
	s.pending = s.pending[:0]
	if s.timer != nil {
		s.timer.Stop()
	}
}

// EndBurst writes what the sink holds: the guest has finished a burst.
func (s *consoleSink) EndBurst() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bursts = true
	s.flushLocked()
}

func (s *consoleSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 && !s.bursts {
		if s.timer == nil {
			s.timer = time.AfterFunc(flushDelay, s.Flush)
		} else {
			s.timer.Reset(flushDelay)
		}
	}
	s.pending = append(s.pending, p...)
	if len(s.pending) >= flushBytes {
		s.flushLocked()
	}
	for _, b := range p {
		if b == '\n' || len(s.line) >= maxLineBytes {
			s.check(true)
			s.line = s.line[:0]
			continue
		}
		if b != '\r' {
			s.line = append(s.line, b)
		}
	}
	// A prompt or marker without a newline yet.
	s.check(false)
	return len(p), nil
}

// check matches the current line; complete lines go into the tail.
func (s *consoleSink) check(complete bool) {
	if complete {
		if len(s.tail) == tailLines {
			copy(s.tail, s.tail[1:])
			s.tail = s.tail[:tailLines-1]
		}
		s.tail = append(s.tail, string(s.line))
	}
	if s.matched || s.onMatch == nil || len(s.line) == 0 {
		return
	}
	var kind matchKind
	switch {
	case s.failOn != nil && s.failOn.Match(s.line):
		kind = matchFailOn
	case s.expect != nil && s.expect.Match(s.line):
		kind = matchExpect
	case complete && kernelPanic.Match(s.line):
		kind = matchPanic
	default:
		return
	}
	s.matched = true
	s.onMatch(kind, string(s.line))
}

// Tail returns the last lines the guest printed.
func (s *consoleSink) Tail() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := append([]string(nil), s.tail...)
	if len(s.line) > 0 {
		lines = append(lines, string(s.line))
	}
	return strings.Join(lines, "\n")
}
