package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// watchEvery is how often a long action says it is still waiting.
const watchEvery = 15 * time.Second

// watch says, every watchEvery until the returned stop is called, that
// the action is still running, with the guest's virtio interrupt counts.
// If the guest hangs waiting on a device, these lines tell a lost
// interrupt (counts frozen, lines still said: the guest's timers run)
// from a guest that stopped altogether (no lines).
func watch(action string) (stop func()) {
	done := make(chan struct{})
	start := time.Now()
	go func() {
		t := time.NewTicker(watchEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				say("GOVM-AGENT-WAITING %s for %.0fs; interrupts %s", action, time.Since(start).Seconds(), virtioInterrupts())
			}
		}
	}()
	return func() { close(done) }
}

// virtioInterrupts sums /proc/interrupts per virtio vector: "name=count".
func virtioInterrupts() string {
	b, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[len(f)-1], "virtio") {
			continue
		}
		var n uint64
		for _, c := range f[1:] {
			var v uint64
			if _, err := fmt.Sscan(c, &v); err != nil {
				break
			}
			n += v
		}
		out = append(out, fmt.Sprintf("%s=%d", f[len(f)-1], n))
	}
	return strings.Join(out, " ")
}

// sayIRQs says each virtio line of /proc/interrupts as GOVM-IRQ, so a test
// sees which interrupt controller served the devices (IO-APIC for INTx,
// PCI-MSIX for MSI-X) and how many interrupts each had.
func sayIRQs() {
	b, err := os.ReadFile("/proc/interrupts")
	if err != nil {
		say("GOVM-IRQ-ERROR %v", err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.HasPrefix(f[len(f)-1], "virtio") {
			say("GOVM-IRQ %s", strings.Join(f, " "))
		}
	}
}
