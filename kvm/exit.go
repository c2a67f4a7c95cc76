package kvm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ExitReason is kvm_run.exit_reason (KVM_EXIT_*).
type ExitReason uint32

const (
	ExitUnknown       ExitReason = 0
	ExitException     ExitReason = 1
	ExitIO            ExitReason = 2
	ExitHypercall     ExitReason = 3
	ExitDebug         ExitReason = 4
	ExitHLT           ExitReason = 5
	ExitMMIO          ExitReason = 6
	ExitIRQWindowOpen ExitReason = 7
	ExitShutdown      ExitReason = 8
	ExitFailEntry     ExitReason = 9
	ExitIntr          ExitReason = 10
	ExitInternalError ExitReason = 17
	ExitSystemEvent   ExitReason = 24
)

var exitNames = map[ExitReason]string{
	ExitUnknown: "UNKNOWN", ExitException: "EXCEPTION", ExitIO: "IO",
	ExitHypercall: "HYPERCALL", ExitDebug: "DEBUG", ExitHLT: "HLT",
	ExitMMIO: "MMIO", ExitIRQWindowOpen: "IRQ_WINDOW_OPEN",
	ExitShutdown: "SHUTDOWN", ExitFailEntry: "FAIL_ENTRY", ExitIntr: "INTR",
	ExitInternalError: "INTERNAL_ERROR", ExitSystemEvent: "SYSTEM_EVENT",
}

func (r ExitReason) String() string {
	if n, ok := exitNames[r]; ok {
		return n
	}
	return fmt.Sprintf("EXIT(%d)", uint32(r))
}

// System event types (KVM_SYSTEM_EVENT_*).
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
)

// Offsets into struct kvm_run (x86_64); see <linux/kvm.h>.
const (
	runImmediateExit = 1
	runExitReason    = 8
	runUnion         = 32 // the exit-specific union

	// io: __u8 direction; __u8 size; __u16 port; __u32 count; __u64 data_offset
	runIODirection  = runUnion + 0
	runIOSize       = runUnion + 1
	runIOPort       = runUnion + 2
	runIOCount      = runUnion + 4
	runIODataOffset = runUnion + 8

	// mmio: __u64 phys_addr; __u8 data[8]; __u32 len; __u8 is_write
	runMMIOAddr    = runUnion + 0
	runMMIOData    = runUnion + 8
	runMMIOLen     = runUnion + 16
	runMMIOIsWrite = runUnion + 20

	// system_event: __u32 type; __u32 ndata; ...
	runSystemEventType = runUnion + 0

	// internal: __u32 suberror; __u32 ndata; __u64 data[16]
	runInternalSuberror = runUnion + 0

	// fail_entry: __u64 hardware_entry_failure_reason; __u32 cpu
	runFailEntryReason = runUnion + 0

	// runMinSize is sizeof(struct kvm_run) on x86_64.
	runMinSize = 2352

	ioDirectionOut = 1
)

// Exit is a decoded VM exit. For IO and MMIO exits, Data aliases the vCPU's
// run area: a handler of a read (IN, MMIO load) fills it, and the values are
// handed to the guest on the next Run. Data is valid only until then.
type Exit struct {
	Reason ExitReason

	// IO: Port, Size (1, 2 or 4), Count (repetitions of a rep ins/outs),
	// Write (OUT). Data holds Size*Count bytes.
	// MMIO: Addr, Write, Size (= len(Data)).
	Port  uint16
	Addr  uint64
	Size  uint8
	Count uint32
	Write bool
	Data  []byte

	// SystemEvent: the KVM_SYSTEM_EVENT_* type.
	EventType uint32
	// InternalError: the KVM_INTERNAL_ERROR_* suberror.
	Suberror uint32
	// FailEntry: the hardware entry failure reason.
	HardwareReason uint64
}

// ErrBadExit is returned when the run area describes an exit that does not
// fit inside it.
var ErrBadExit = errors.New("malformed exit in kvm_run")

// DecodeExit decodes the exit described by a vCPU run area. It is a pure
// function over the bytes, so exit handling can be tested without KVM.
func DecodeExit(run []byte) (Exit, error) {
	if len(run) < runMinSize {
		return Exit{}, fmt.Errorf("%w: run area of %d bytes", ErrBadExit, len(run))
	}
	le := binary.LittleEndian
	e := Exit{Reason: ExitReason(le.Uint32(run[runExitReason:]))}
	switch e.Reason {
	case ExitIO:
		e.Write = run[runIODirection] == ioDirectionOut
		e.Size = run[runIOSize]
		e.Port = le.Uint16(run[runIOPort:])
		e.Count = le.Uint32(run[runIOCount:])
		off := le.Uint64(run[runIODataOffset:])
		n := uint64(e.Size) * uint64(e.Count)
		if e.Size == 0 || e.Count == 0 || off > uint64(len(run)) || n > uint64(len(run))-off {
			return Exit{}, fmt.Errorf("%w: io port %#x size %d count %d offset %d", ErrBadExit, e.Port, e.Size, e.Count, off)
		}
		e.Data = run[off : off+n : off+n]
	case ExitMMIO:
		e.Addr = le.Uint64(run[runMMIOAddr:])
		l := le.Uint32(run[runMMIOLen:])
		if l == 0 || l > 8 {
			return Exit{}, fmt.Errorf("%w: mmio at %#x length %d", ErrBadExit, e.Addr, l)
		}
		e.Size = uint8(l)
		e.Count = 1
		e.Write = run[runMMIOIsWrite] != 0
		e.Data = run[runMMIOData : runMMIOData+int(l) : runMMIOData+int(l)]
	case ExitSystemEvent:
		e.EventType = le.Uint32(run[runSystemEventType:])
	case ExitInternalError:
		e.Suberror = le.Uint32(run[runInternalSuberror:])
	case ExitFailEntry:
		e.HardwareReason = le.Uint64(run[runFailEntryReason:])
	}
	return e, nil
}
