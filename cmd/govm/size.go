package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadSize is returned by ParseSize.
var ErrBadSize = errors.New("bad size")

// ParseSize parses a memory size: a number with an optional K, M, G or T
// suffix (binary units; "MiB", "MB" and "m" are accepted too). A plain
// number means MiB, as in QEMU's -m.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("%w: empty", ErrBadSize)
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%w: %q does not start with a number", ErrBadSize, s)
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %v", ErrBadSize, s, err)
	}
	unit := strings.ToUpper(strings.TrimSpace(t[i:]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	var shift uint
	switch unit {
	case "", "M":
		shift = 20
	case "K":
		shift = 10
	case "G":
		shift = 30
	case "T":
		shift = 40
	default:
		return 0, fmt.Errorf("%w: %q has an unknown unit (use K, M, G or T)", ErrBadSize, s)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: %q is zero", ErrBadSize, s)
	}
	if n > (^uint64(0))>>shift {
		return 0, fmt.Errorf("%w: %q is too large", ErrBadSize, s)
	}
	return n << shift, nil
}
