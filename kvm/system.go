package kvm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// APIVersion is the only KVM API version there has ever been (KVM_API_VERSION).
const APIVersion = 12

// DevicePath is where the KVM device node lives.
const DevicePath = "/dev/kvm"

// Capabilities (KVM_CAP_*) govm asks about.
type Cap int

const (
	CapIRQChip        Cap = 0
	CapUserMemory     Cap = 3
	CapSetTSSAddr     Cap = 4
	CapExtCPUID       Cap = 7
	CapNrVCPUs        Cap = 9
	CapIRQRouting     Cap = 25
	CapIRQFD          Cap = 32
	CapPIT2           Cap = 33
	CapIOEventFD      Cap = 36
	CapSetIdentityMap Cap = 37
	CapMaxVCPUs       Cap = 66
	// CapTSCDeadlineTimer: KVM emulates the local APIC's TSC-deadline
	// timer mode. KVM_GET_SUPPORTED_CPUID does not report it; userspace
	// sets CPUID.01H:ECX[24] itself when this is present (KVM API,
	// KVM_GET_SUPPORTED_CPUID).
	CapTSCDeadlineTimer Cap = 72
	CapSignalMSI        Cap = 77
	CapX2APICAPI        Cap = 129
	CapImmediateExit    Cap = 136
)

var capNames = map[Cap]string{
	CapIRQChip:          "KVM_CAP_IRQCHIP",
	CapUserMemory:       "KVM_CAP_USER_MEMORY",
	CapSetTSSAddr:       "KVM_CAP_SET_TSS_ADDR",
	CapExtCPUID:         "KVM_CAP_EXT_CPUID",
	CapNrVCPUs:          "KVM_CAP_NR_VCPUS",
	CapIRQRouting:       "KVM_CAP_IRQ_ROUTING",
	CapIRQFD:            "KVM_CAP_IRQFD",
	CapPIT2:             "KVM_CAP_PIT2",
	CapIOEventFD:        "KVM_CAP_IOEVENTFD",
	CapSetIdentityMap:   "KVM_CAP_SET_IDENTITY_MAP_ADDR",
	CapMaxVCPUs:         "KVM_CAP_MAX_VCPUS",
	CapTSCDeadlineTimer: "KVM_CAP_TSC_DEADLINE_TIMER",
	CapSignalMSI:        "KVM_CAP_SIGNAL_MSI",
	CapX2APICAPI:        "KVM_CAP_X2APIC_API",
	CapImmediateExit:    "KVM_CAP_IMMEDIATE_EXIT",
}

func (c Cap) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("KVM_CAP(%d)", int(c))
}

// RequiredCaps are the capabilities a govm VM cannot run without.
var RequiredCaps = []Cap{
	CapUserMemory, CapSetTSSAddr, CapExtCPUID, CapIRQChip, CapPIT2,
	CapIRQRouting, CapIRQFD, CapIOEventFD, CapSetIdentityMap, CapImmediateExit,
}

// Sentinel errors callers branch on.
var (
	ErrNoDevice   = errors.New("no KVM device")
	ErrPermission = errors.New("permission denied on KVM device")
)

// MissingCapError reports a capability the host's KVM lacks.
type MissingCapError struct{ Cap Cap }

func (e *MissingCapError) Error() string {
	return fmt.Sprintf("host KVM lacks %s", e.Cap)
}

// APIVersionError reports a KVM API version other than 12.
type APIVersionError struct{ Got int }

func (e *APIVersionError) Error() string {
	return fmt.Sprintf("KVM API version %d, want %d", e.Got, APIVersion)
}

// System is an open /dev/kvm.
type System struct {
	fd       int
	mmapSize int
}

// Open opens the KVM device at path (normally DevicePath), checks the API
// version and reads the size of the vCPU run area.
func Open(path string) (*System, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
			return nil, fmt.Errorf("%w: %s: %w", ErrNoDevice, path, err)
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			return nil, fmt.Errorf("%w: %s: %w", ErrPermission, path, err)
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	s := &System{fd: fd}
	v, err := ioctlVal(fd, reqGetAPIVersion, 0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	if v != APIVersion {
		s.Close()
		return nil, &APIVersionError{Got: v}
	}
	n, err := ioctlVal(fd, reqGetVCPUMmapSize, 0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	if n < runMinSize {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %d bytes, need at least %d", n, runMinSize)
	}
	s.mmapSize = n
	return s, nil
}

// Close closes /dev/kvm.
func (s *System) Close() error { return unix.Close(s.fd) }

// CheckExtension returns the value of KVM_CHECK_EXTENSION for c (0: absent).
func (s *System) CheckExtension(c Cap) int {
	r, err := ioctlVal(s.fd, reqCheckExtension, uintptr(c))
	if err != nil {
		return 0
	}
	return r
}

// CheckRequired returns a *MissingCapError for the first required
// capability the host lacks.
func (s *System) CheckRequired() error {
	for _, c := range RequiredCaps {
		if s.CheckExtension(c) <= 0 {
			return &MissingCapError{Cap: c}
		}
	}
	return nil
}

// MaxVCPUs is the largest vCPU count a VM may have on this host.
func (s *System) MaxVCPUs() int {
	if n := s.CheckExtension(CapMaxVCPUs); n > 0 {
		return n
	}
	if n := s.CheckExtension(CapNrVCPUs); n > 0 {
		return n
	}
	return 4 // the documented default when neither capability answers
}

// maxCPUIDEntries bounds KVM_GET_SUPPORTED_CPUID; hosts return ~50-100.
const maxCPUIDEntries = 256

// SupportedCPUID returns the CPUID leaves KVM can expose to a guest.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	hdr := cpuid2Header{NEnt: maxCPUIDEntries}
	buf := packFlex[cpuid2Header, CPUIDEntry](&hdr, nil, maxCPUIDEntries)
	if _, err := ioctlBuf(s.fd, reqGetSupportedCPUID, buf); err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	fromBytes(buf, &hdr)
	if hdr.NEnt > maxCPUIDEntries {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %d entries", hdr.NEnt)
	}
	return unpackFlex[cpuid2Header, CPUIDEntry](buf, &hdr, int(hdr.NEnt)), nil
}

// CreateVM creates a VM.
func (s *System) CreateVM() (*VM, error) {
	fd, err := ioctlVal(s.fd, reqCreateVM, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	unix.CloseOnExec(fd)
	return &VM{fd: fd, mmapSize: s.mmapSize}, nil
}
