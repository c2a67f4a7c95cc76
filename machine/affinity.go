package machine

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuSetSize is how many CPUs a unix.CPUSet holds: CPU_SETSIZE of
// sched_setaffinity(2) (TestCPUSetSize checks it against x/sys).
const cpuSetSize = 1024

// ParseCPUList parses a host CPU list as Linux writes one (cpuset(7),
// "List format"): comma-separated CPU numbers and inclusive ranges, in
// the order given, e.g. "2,3" or "0-3,8".
func ParseCPUList(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty CPU list", ErrAffinity)
	}
	var cpus []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("%w: %q is not a CPU number or range", ErrAffinity, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("%w: %q is not a CPU number or range", ErrAffinity, part)
			}
		}
		for c := a; c <= b; c++ {
			if c >= cpuSetSize {
				return nil, fmt.Errorf("%w: CPU %d is past the largest Linux knows (%d)", ErrAffinity, c, cpuSetSize-1)
			}
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// checkAffinity checks a CPUAffinity for n vCPUs: one entry per vCPU,
// each a CPU the process may run on (its own affinity, as taskset or a
// cgroup's cpuset leaves it).
func checkAffinity(cpus []int, n int) error {
	if len(cpus) == 0 {
		return nil
	}
	if len(cpus) != n {
		return fmt.Errorf("%w: %d CPUs listed for %d vCPUs (one per vCPU)", ErrAffinity, len(cpus), n)
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return fmt.Errorf("%w: reading govm's own affinity: %v", ErrAffinity, err)
	}
	for _, c := range cpus {
		if c < 0 || c >= cpuSetSize || !allowed.IsSet(c) {
			return fmt.Errorf("%w: host CPU %d is not one govm may run on", ErrAffinity, c)
		}
	}
	return nil
}
