package boot

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
)

// elfMagic is the ELF identification prefix.
var elfMagic = []byte("\x7fELF")

// maxELFSegments bounds the program headers govm accepts; vmlinux has ~5.
const maxELFSegments = 64

// ELFSegment is one PT_LOAD segment of a vmlinux, at its physical address.
type ELFSegment struct {
	Addr    uint64 // p_paddr
	Offset  int64  // p_offset: where its bytes are in the file
	FileLen uint64 // p_filesz: bytes read from the file
	MemLen  uint64 // p_memsz: the rest is zeroed
}

// ELFKernel is a parsed uncompressed x86_64 vmlinux.
type ELFKernel struct {
	Entry    uint64 // physical address of startup_64
	Segments []ELFSegment
}

// IsELF reports whether the image starts with the ELF magic.
func IsELF(r io.ReaderAt) bool {
	b := make([]byte, len(elfMagic))
	if _, err := r.ReadAt(b, 0); err != nil {
		return false
	}
	return bytes.Equal(b, elfMagic)
}

// ParseELF reads and validates an x86_64 ELF vmlinux of size bytes.
func ParseELF(r io.ReaderAt, size int64) (*ELFKernel, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("%w: ELF %v %v %v is not an x86_64 executable", ErrNotKernel, f.Class, f.Machine, f.Type)
	}
	if len(f.Progs) > maxELFSegments {
		return nil, fmt.Errorf("%w: %d program headers", ErrCorrupt, len(f.Progs))
	}
	k := &ELFKernel{Entry: f.Entry}
	entryInside := false
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if p.Filesz > p.Memsz || p.Paddr+p.Memsz < p.Paddr || p.Off > uint64(size) || p.Filesz > uint64(size)-p.Off {
			return nil, fmt.Errorf("%w: PT_LOAD at %#x (file %#x+%#x, mem %#x)", ErrCorrupt, p.Paddr, p.Off, p.Filesz, p.Memsz)
		}
		k.Segments = append(k.Segments, ELFSegment{Addr: p.Paddr, Offset: int64(p.Off), FileLen: p.Filesz, MemLen: p.Memsz})
		if k.Entry >= p.Paddr && k.Entry < p.Paddr+p.Memsz {
			entryInside = true
		}
	}
	if len(k.Segments) == 0 {
		return nil, fmt.Errorf("%w: no loadable segments", ErrCorrupt)
	}
	if !entryInside {
		return nil, fmt.Errorf("%w: entry %#x is not in a loadable segment (is this a vmlinux?)", ErrCorrupt, k.Entry)
	}
	return k, nil
}

// extent returns the lowest and the end address the segments occupy.
func (k *ELFKernel) extent() (lo, hi uint64) {
	lo = ^uint64(0)
	for _, s := range k.Segments {
		lo = min(lo, s.Addr)
		hi = max(hi, s.Addr+s.MemLen)
	}
	return lo, hi
}
