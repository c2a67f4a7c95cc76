package boot

import (
	"bytes"
	"encoding/binary"
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

// ELF64 layout (System V gABI, "ELF Header" and "Program Header"; the
// x86-64 psABI for EM_X86_64). govm reads only the file header and the
// program headers: a vmlinux needs nothing else to load.
const (
	elfHeaderSize = 64
	elfPhdrSize   = 56
	elfClass64    = 2  // e_ident[EI_CLASS]
	elfData2LSB   = 1  // e_ident[EI_DATA]: little-endian
	elfTypeExec   = 2  // e_type ET_EXEC
	elfMachineX64 = 62 // e_machine EM_X86_64
	elfPTLoad     = 1  // p_type PT_LOAD
	elfOffClass   = 4  // EI_CLASS
	elfOffData    = 5  // EI_DATA
	elfOffType    = 16 // e_type
	elfOffMachine = 18 // e_machine
	elfOffEntry   = 24 // e_entry
	elfOffPhoff   = 32 // e_phoff
	elfOffPhentsz = 54 // e_phentsize
	elfOffPhnum   = 56 // e_phnum
	phOffType     = 0  // p_type
	phOffOffset   = 8  // p_offset
	phOffPaddr    = 24 // p_paddr
	phOffFilesz   = 32 // p_filesz
	phOffMemsz    = 40 // p_memsz
)

// ParseELF reads and validates an x86_64 ELF vmlinux of size bytes.
func ParseELF(r io.ReaderAt, size int64) (*ELFKernel, error) {
	var h [elfHeaderSize]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("%w: ELF header: %w", ErrCorrupt, err)
	}
	le := binary.LittleEndian
	if !bytes.Equal(h[:len(elfMagic)], elfMagic) {
		return nil, fmt.Errorf("%w: no ELF magic", ErrNotKernel)
	}
	class, data := h[elfOffClass], h[elfOffData]
	typ, machine := le.Uint16(h[elfOffType:]), le.Uint16(h[elfOffMachine:])
	if class != elfClass64 || data != elfData2LSB || typ != elfTypeExec || machine != elfMachineX64 {
		return nil, fmt.Errorf("%w: ELF class %d, data %d, type %d, machine %d is not a little-endian x86_64 executable",
			ErrNotKernel, class, data, typ, machine)
	}
	phoff, phentsize, phnum := le.Uint64(h[elfOffPhoff:]), le.Uint16(h[elfOffPhentsz:]), le.Uint16(h[elfOffPhnum:])
	if phnum > maxELFSegments {
		return nil, fmt.Errorf("%w: %d program headers", ErrCorrupt, phnum)
	}
	if phentsize != elfPhdrSize || phoff > uint64(size) || uint64(phnum)*elfPhdrSize > uint64(size)-phoff {
		return nil, fmt.Errorf("%w: program headers at %#x (%d of %d bytes) outside the %d-byte file", ErrCorrupt, phoff, phnum, phentsize, size)
	}
	phdrs := make([]byte, int(phnum)*elfPhdrSize)
	if _, err := r.ReadAt(phdrs, int64(phoff)); err != nil {
		return nil, fmt.Errorf("%w: program headers: %w", ErrCorrupt, err)
	}
	k := &ELFKernel{Entry: le.Uint64(h[elfOffEntry:])}
	entryInside := false
	for i := range int(phnum) {
		p := phdrs[i*elfPhdrSize:]
		off, paddr := le.Uint64(p[phOffOffset:]), le.Uint64(p[phOffPaddr:])
		filesz, memsz := le.Uint64(p[phOffFilesz:]), le.Uint64(p[phOffMemsz:])
		if le.Uint32(p[phOffType:]) != elfPTLoad || memsz == 0 {
			continue
		}
		if filesz > memsz || paddr+memsz < paddr || off > uint64(size) || filesz > uint64(size)-off {
			return nil, fmt.Errorf("%w: PT_LOAD at %#x (file %#x+%#x, mem %#x)", ErrCorrupt, paddr, off, filesz, memsz)
		}
		k.Segments = append(k.Segments, ELFSegment{Addr: paddr, Offset: int64(off), FileLen: filesz, MemLen: memsz})
		if k.Entry >= paddr && k.Entry < paddr+memsz {
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
