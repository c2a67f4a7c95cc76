package agentkit

import "testing"

func TestCPUSplit(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest, in ticks.
	was := []uint64{100, 10, 50, 1000, 5, 1, 2, 0, 7}
	now := []uint64{103, 11, 52, 1010, 6, 2, 5, 0, 9}
	var s CPUSplit
	s.Add(was, now)
	s.Add(was, now) // a second CPU with the same growth
	const want = "user=80 system=40 softirq=60 irq=20 guest=40 idle=220"
	if got := s.String(); got != want {
		t.Errorf("%s, want %s", got, want)
	}
}
