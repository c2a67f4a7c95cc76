package boot

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/govm/govm/mem"
)

// Config says what to boot.
type Config struct {
	Kernel     io.ReaderAt
	KernelSize int64
	Initrd     io.ReaderAt // nil: no initrd
	InitrdSize int64
	Cmdline    string
}

// Load places the kernel (a bzImage or an ELF vmlinux), the initrd, the
// command line, the zero page and the boot page tables and GDT in guest
// memory, and returns the register state the boot vCPU starts with.
func Load(m *mem.Memory, cfg Config) (*CPUState, error) {
	var (
		entry      uint64
		kernLo     uint64
		kernHi     uint64
		zp         = make([]byte, bpSize)
		initrdMax  = uint64(0xffffffff)
		cmdlineMax = uint64(CmdlineMax)
		loadKernel func() error // reads the kernel into memory
	)
	le := binary.LittleEndian
	switch {
	case IsELF(cfg.Kernel):
		k, err := ParseELF(cfg.Kernel, cfg.KernelSize)
		if err != nil {
			return nil, err
		}
		kernLo, kernHi = k.extent()
		if kernLo < HighMemStart {
			return nil, fmt.Errorf("%w: vmlinux loads at %#x, below 1 MiB", ErrCorrupt, kernLo)
		}
		for _, s := range k.Segments {
			if !m.Contains(s.Addr, s.MemLen) {
				return nil, fmt.Errorf("%w: segment at %#x of %d bytes", ErrKernelTooBig, s.Addr, s.MemLen)
			}
		}
		loadKernel = func() error {
			for _, s := range k.Segments {
				if err := readInto(m, cfg.Kernel, s.Offset, s.Addr, s.FileLen); err != nil {
					return fmt.Errorf("segment at %#x: %w", s.Addr, err)
				}
				if err := m.Zero(s.Addr+s.FileLen, s.MemLen-s.FileLen); err != nil {
					return fmt.Errorf("%w: segment at %#x: %w", ErrKernelTooBig, s.Addr, err)
				}
			}
			return nil
		}
		entry = k.Entry
		// No setup header comes with a vmlinux: write the fields the
		// kernel reads from the one a boot loader would have passed.
		le.PutUint16(zp[hdrBootFlag:], bootFlagMagic)
		le.PutUint32(zp[hdrMagic:], headerMagic)
		le.PutUint16(zp[hdrVersion:], MinProtocol)
		le.PutUint32(zp[hdrKernelAlign:], DefaultKernelAddr)
		le.PutUint32(zp[hdrCmdlineSize:], CmdlineMax-1)
	default:
		k, err := ParseBzImage(cfg.Kernel, cfg.KernelSize)
		if err != nil {
			return nil, err
		}
		kernLo = k.LoadAddr()
		kernHi = kernLo + k.Footprint()
		if !m.Contains(kernLo, k.Footprint()) {
			return nil, fmt.Errorf("%w: needs [%#x, %#x)", ErrKernelTooBig, kernLo, kernHi)
		}
		loadKernel = func() error {
			if err := readInto(m, cfg.Kernel, k.KernelOffset, kernLo, k.KernelLen); err != nil {
				return fmt.Errorf("protected-mode kernel: %w", err)
			}
			return nil
		}
		entry = kernLo + entry64Offset
		copy(zp[hdrSetupSects:], k.Header)
		initrdMax = uint64(k.InitrdAddrMax)
		if k.CmdlineSize > 0 {
			cmdlineMax = min(cmdlineMax, uint64(k.CmdlineSize)+1)
		}
	}
	zp[hdrTypeOfLoader] = loaderTypeUndefined
	zp[hdrLoadFlags] |= loadFlagLoadedHigh | loadFlagCanUseHeap
	le.PutUint16(zp[hdrVidMode:], vidModeNormal)
	le.PutUint16(zp[hdrHeapEndPtr:], 0xfe00)

	// Command line.
	if uint64(len(cfg.Cmdline))+1 > cmdlineMax {
		return nil, fmt.Errorf("%w: %d bytes, the kernel takes at most %d", ErrCmdlineTooBig, len(cfg.Cmdline), cmdlineMax-1)
	}
	cl, err := m.Slice(CmdlineAddr, uint64(len(cfg.Cmdline))+1)
	if err != nil {
		return nil, fmt.Errorf("command line: %w", err)
	}
	copy(cl, cfg.Cmdline)
	cl[len(cfg.Cmdline)] = 0
	le.PutUint32(zp[hdrCmdLinePtr:], CmdlineAddr)
	le.PutUint32(zp[bpExtCmdLinePtr:], 0)

	// Initrd: as high as allowed, page aligned, above the kernel.
	var initrdDone chan error
	if cfg.Initrd != nil && cfg.InitrdSize > 0 {
		addr, err := placeInitrd(m, uint64(cfg.InitrdSize), initrdMax, kernHi)
		if err != nil {
			return nil, err
		}
		// The initrd is read while the kernel is: most of the time
		// goes to faulting in fresh guest pages, which two threads do
		// side by side.
		initrdDone = make(chan error, 1)
		go func() {
			if err := readInto(m, cfg.Initrd, 0, addr, uint64(cfg.InitrdSize)); err != nil {
				initrdDone <- fmt.Errorf("initrd: %w", err)
				return
			}
			initrdDone <- nil
		}()
		le.PutUint32(zp[hdrRamdiskImage:], uint32(addr))
		le.PutUint32(zp[hdrRamdiskSize:], uint32(cfg.InitrdSize))
		le.PutUint32(zp[bpExtRamdiskImage:], uint32(addr>>32))
		le.PutUint32(zp[bpExtRamdiskSize:], uint32(uint64(cfg.InitrdSize)>>32))
	}

	kerr := loadKernel()
	if initrdDone != nil {
		if err := <-initrdDone; err != nil && kerr == nil {
			kerr = err
		}
	}
	if kerr != nil {
		return nil, kerr
	}

	// e820 map.
	e820 := E820Map(m)
	if len(e820) > bpE820Max {
		return nil, fmt.Errorf("e820 map of %d entries exceeds %d", len(e820), bpE820Max)
	}
	zp[bpE820Entries] = uint8(len(e820))
	for i, e := range e820 {
		off := bpE820Table + i*e820EntrySize
		le.PutUint64(zp[off:], e.Addr)
		le.PutUint64(zp[off+8:], e.Size)
		le.PutUint32(zp[off+16:], uint32(e.Type))
	}
	if err := m.WriteAt(zp, ZeroPageAddr); err != nil {
		return nil, fmt.Errorf("zero page: %w", err)
	}

	if err := writePageTables(m); err != nil {
		return nil, err
	}
	if err := writeGDT(m); err != nil {
		return nil, err
	}
	st := initialState(entry)
	return &st, nil
}

// placeInitrd picks the highest page-aligned address for an initrd of size
// bytes that ends at or below maxAddr (initrd_addr_max is the address of
// the last byte), lies inside one RAM region below 4 GiB, and starts at or
// above kernEnd.
func placeInitrd(m *mem.Memory, size, maxAddr, kernEnd uint64) (uint64, error) {
	limit := min(maxAddr, 0xffffffff) + 1 // first byte not allowed
	var best uint64
	found := false
	for _, r := range m.Regions() {
		top := min(r.End(), limit)
		if top <= r.Base || top-r.Base < size {
			continue
		}
		addr := (top - size) &^ (pageSize - 1)
		if addr < r.Base || addr < kernEnd {
			continue
		}
		if !found || addr > best {
			best, found = addr, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%w: %d MiB initrd, RAM below %#x after the kernel (ends %#x) is too small",
			ErrInitrdTooBig, size>>20, limit, kernEnd)
	}
	return best, nil
}

// readInto reads n bytes at off of r straight into guest memory at addr,
// which must hold them (ErrKernelTooBig otherwise; placing the initrd has
// checked its room already). A file shorter than it said is an error.
func readInto(m *mem.Memory, r io.ReaderAt, off int64, addr, n uint64) error {
	dst, err := m.Slice(addr, n)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrKernelTooBig, err)
	}
	// io.ReaderAt may say io.EOF along with a full read that ends the file.
	if got, err := r.ReadAt(dst, off); err != nil && (got < len(dst) || err != io.EOF) {
		return fmt.Errorf("reading %d bytes at %#x: %w", n, off, err)
	}
	return nil
}
