package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Offsets in the bzImage file and in struct boot_params of the setup
// header fields govm reads or writes (boot.rst, "The Real-Mode Kernel
// Header"; arch/x86/include/uapi/asm/bootparam.h).
const (
	hdrSetupSects    = 0x1f1
	hdrBootFlag      = 0x1fe
	hdrJump          = 0x200
	hdrMagic         = 0x202
	hdrVersion       = 0x206
	hdrVidMode       = 0x1fa
	hdrTypeOfLoader  = 0x210
	hdrLoadFlags     = 0x211
	hdrCode32Start   = 0x214
	hdrRamdiskImage  = 0x218
	hdrRamdiskSize   = 0x21c
	hdrHeapEndPtr    = 0x224
	hdrCmdLinePtr    = 0x228
	hdrInitrdAddrMax = 0x22c
	hdrKernelAlign   = 0x230
	hdrRelocatable   = 0x234
	hdrXLoadFlags    = 0x236
	hdrCmdlineSize   = 0x238
	hdrPayloadOffset = 0x248
	hdrPayloadLength = 0x24c
	hdrPrefAddress   = 0x258
	hdrInitSize      = 0x260
	hdrEnd           = 0x268 // end of the fields of protocol 2.15

	// boot_params fields outside the setup header.
	bpExtRamdiskImage = 0x0c0
	bpExtRamdiskSize  = 0x0c4
	bpExtCmdLinePtr   = 0x0c8
	bpE820Entries     = 0x1e8
	bpE820Table       = 0x2d0
	bpE820Max         = 128 // E820_MAX_ENTRIES_ZEROPAGE
	bpSize            = 0x1000
	bpHeaderLimit     = 0x290 // edd_mbr_sig_buffer: the setup header ends before it

	bootFlagMagic     = 0xaa55
	headerMagic       = 0x53726448 // "HdrS"
	sectorSize        = 512
	defaultSetupSects = 4 // setup_sects == 0 means 4

	// MinProtocol is boot protocol 2.12, the first with xloadflags and so
	// the first that can say it has a 64-bit entry point.
	MinProtocol = 0x020c

	loadFlagLoadedHigh    = 1 << 0 // LOADED_HIGH: protected-mode code at 1 MiB+
	loadFlagCanUseHeap    = 1 << 7 // CAN_USE_HEAP
	xlfKernel64           = 1 << 0 // XLF_KERNEL_64: 64-bit entry at +0x200
	xlfCanBeLoadedAbove4G = 1 << 1

	// loaderTypeUndefined is type_of_loader 0xff: "undefined", the value
	// boot.rst assigns to boot loaders without an ID.
	loaderTypeUndefined = 0xff
	vidModeNormal       = 0xffff

	// entry64Offset is the offset of startup_64 from the start of the
	// protected-mode kernel.
	entry64Offset = 0x200
)

// Errors that callers (the CLI) branch on.
var (
	ErrNotKernel     = errors.New("not a Linux kernel (no bzImage boot header and not an ELF vmlinux)")
	ErrProtocolOld   = errors.New("boot protocol too old")
	ErrNot64Bit      = errors.New("kernel has no 64-bit entry point (xloadflags lacks XLF_KERNEL_64)")
	ErrCorrupt       = errors.New("corrupt kernel image")
	ErrCmdlineTooBig = errors.New("kernel command line too long")
	ErrInitrdTooBig  = errors.New("initrd does not fit in guest RAM")
	ErrKernelTooBig  = errors.New("kernel does not fit in guest RAM")
)

// BzImage is a parsed and validated bzImage.
type BzImage struct {
	Protocol      uint16
	SetupSects    int
	LoadFlags     uint8
	XLoadFlags    uint16
	Relocatable   bool
	KernelAlign   uint32
	InitrdAddrMax uint32
	CmdlineSize   uint32
	PrefAddress   uint64
	InitSize      uint32
	PayloadOffset uint32
	PayloadLength uint32

	// Header holds the bytes of the setup header, from 0x1f1 to its end,
	// to be copied into the zero page.
	Header []byte
	// KernelOffset and KernelLen locate the protected-mode kernel in the
	// image (after the setup sectors); Load reads it straight into guest
	// memory at LoadAddr, so govm never holds a copy of it.
	KernelOffset int64
	KernelLen    uint64
}

// SetupHeaderEnd returns the end offset of the setup header: 0x202 plus the
// byte at 0x201 (the jump's displacement), as boot.rst specifies.
func setupHeaderEnd(b []byte) int {
	return hdrMagic + int(b[hdrJump+1])
}

// ParseBzImage reads and validates a bzImage of size bytes.
func ParseBzImage(r io.ReaderAt, size int64) (*BzImage, error) {
	if size < hdrEnd {
		return nil, fmt.Errorf("%w: %d bytes is too small", ErrNotKernel, size)
	}
	setup := make([]byte, hdrEnd)
	if _, err := r.ReadAt(setup, 0); err != nil {
		return nil, fmt.Errorf("reading setup header: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint16(setup[hdrBootFlag:]) != bootFlagMagic || le.Uint32(setup[hdrMagic:]) != headerMagic {
		return nil, ErrNotKernel
	}
	k := &BzImage{
		Protocol:   le.Uint16(setup[hdrVersion:]),
		SetupSects: int(setup[hdrSetupSects]),
		LoadFlags:  setup[hdrLoadFlags],
	}
	if k.Protocol < MinProtocol {
		return nil, fmt.Errorf("%w: kernel speaks %d.%02d, govm needs %d.%02d or later",
			ErrProtocolOld, k.Protocol>>8, k.Protocol&0xff, MinProtocol>>8, MinProtocol&0xff)
	}
	k.XLoadFlags = le.Uint16(setup[hdrXLoadFlags:])
	if k.XLoadFlags&xlfKernel64 == 0 {
		return nil, ErrNot64Bit
	}
	if k.LoadFlags&loadFlagLoadedHigh == 0 {
		return nil, fmt.Errorf("%w: zImage (not loaded high) is not supported", ErrCorrupt)
	}
	if k.SetupSects == 0 {
		k.SetupSects = defaultSetupSects
	}
	k.Relocatable = setup[hdrRelocatable] != 0
	k.KernelAlign = le.Uint32(setup[hdrKernelAlign:])
	k.InitrdAddrMax = le.Uint32(setup[hdrInitrdAddrMax:])
	k.CmdlineSize = le.Uint32(setup[hdrCmdlineSize:])
	k.PayloadOffset = le.Uint32(setup[hdrPayloadOffset:])
	k.PayloadLength = le.Uint32(setup[hdrPayloadLength:])
	k.PrefAddress = le.Uint64(setup[hdrPrefAddress:])
	k.InitSize = le.Uint32(setup[hdrInitSize:])

	end := setupHeaderEnd(setup)
	if end <= hdrInitSize || end > bpHeaderLimit {
		return nil, fmt.Errorf("%w: setup header ends at %#x", ErrCorrupt, end)
	}
	setupLen := int64(k.SetupSects+1) * sectorSize
	if setupLen >= size {
		return nil, fmt.Errorf("%w: %d setup sectors in a %d-byte file", ErrCorrupt, k.SetupSects, size)
	}
	hdr := make([]byte, end-hdrSetupSects)
	if _, err := r.ReadAt(hdr, hdrSetupSects); err != nil {
		return nil, fmt.Errorf("reading setup header: %w", err)
	}
	k.Header = hdr
	if k.InitSize != 0 && uint64(k.InitSize) < uint64(size-setupLen) {
		return nil, fmt.Errorf("%w: init_size %#x smaller than the kernel (%#x bytes)", ErrCorrupt, k.InitSize, size-setupLen)
	}
	if k.KernelAlign != 0 && k.KernelAlign&(k.KernelAlign-1) != 0 {
		return nil, fmt.Errorf("%w: kernel_alignment %#x is not a power of two", ErrCorrupt, k.KernelAlign)
	}
	k.KernelOffset, k.KernelLen = setupLen, uint64(size-setupLen)
	return k, nil
}

// LoadAddr is where the protected-mode kernel is placed: the kernel's own
// preferred address (pref_address, protocol 2.10+), or 16 MiB.
func (k *BzImage) LoadAddr() uint64 {
	if k.PrefAddress >= HighMemStart {
		return k.PrefAddress
	}
	return DefaultKernelAddr
}

// Footprint is the memory the kernel needs from its load address until it
// has decompressed itself (init_size).
func (k *BzImage) Footprint() uint64 {
	if uint64(k.InitSize) < k.KernelLen {
		return k.KernelLen
	}
	return uint64(k.InitSize)
}
