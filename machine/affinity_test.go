package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/govm/govm/kvm/kvmtest"
	"golang.org/x/sys/unix"
)

func TestCPUSetSize(t *testing.T) {
	if got := len(unix.CPUSet{}) * 64; got != cpuSetSize {
		t.Fatalf("unix.CPUSet holds %d CPUs, cpuSetSize says %d", got, cpuSetSize)
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
	}{
		{"0", []int{0}},
		{"2,3", []int{2, 3}},
		{"3,2", []int{3, 2}},
		{"0-3", []int{0, 1, 2, 3}},
		{"0-1,8, 5", []int{0, 1, 8, 5}},
		{"", nil},
		{"a", nil},
		{"-1", nil},
		{"3-1", nil},
		{"1,,2", nil},
		{"0-4096", nil},
	}
	for _, tt := range tests {
		got, err := ParseCPUList(tt.in)
		if tt.want == nil {
			if !errors.Is(err, ErrAffinity) {
				t.Errorf("ParseCPUList(%q) = %v, %v; want ErrAffinity", tt.in, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestCheckAffinity(t *testing.T) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	first := -1
	for c := 0; c < cpuSetSize && first < 0; c++ {
		if allowed.IsSet(c) {
			first = c
		}
	}
	if err := checkAffinity(nil, 4); err != nil {
		t.Errorf("no affinity: %v", err)
	}
	if err := checkAffinity([]int{first, first}, 2); err != nil {
		t.Errorf("two vCPUs on CPU %d: %v", first, err)
	}
	if err := checkAffinity([]int{first}, 2); !errors.Is(err, ErrAffinity) {
		t.Errorf("one CPU for two vCPUs: %v, want ErrAffinity", err)
	}
	if err := checkAffinity([]int{cpuSetSize - 1}, 1); !errors.Is(err, ErrAffinity) {
		t.Errorf("a CPU the process may not use: %v, want ErrAffinity", err)
	}
}

// allowedCPUs lists the CPUs this process may run on.
func allowedCPUs(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < cpuSetSize; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// TestVCPUAffinity: with CPUAffinity, vCPU i's thread may run only on the
// i-th CPU of the list, as the kernel reports it in
// /proc/PID/task/TID/status.
func TestVCPUAffinity(t *testing.T) {
	kvmtest.Require(t)
	cpus := allowedCPUs(t)
	want := []int{cpus[len(cpus)-1], cpus[0]} // the list's order, not the CPUs'
	m, err := New(Config{CPUs: 2, CPUAffinity: want, test: tinyGuest(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Memory().WriteAt(guestSpin, testCode); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	got := make([]string, 2)
	go func() {
		defer cancel(errors.New("test over"))
		deadline := time.Now().Add(5 * time.Second)
		for i := range got {
			for time.Now().Before(deadline) {
				tid := m.vcpus[i].tid.Load()
				b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/status", tid))
				if tid != 0 && err == nil {
					for _, l := range strings.Split(string(b), "\n") {
						if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok && strings.TrimSpace(v) == strconv.Itoa(want[i]) {
							got[i] = strings.TrimSpace(v)
						}
					}
				}
				if got[i] != "" {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	runWithin(t, m, ctx, 10*time.Second)
	for i := range got {
		if got[i] != strconv.Itoa(want[i]) {
			t.Errorf("vCPU %d's thread allowed on %q, want %d", i, got[i], want[i])
		}
	}
}
