package boot

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestParseELFMatchesDebugELF: govm's own ELF reader finds the same entry
// point and PT_LOAD segments as the standard library's, on the fake
// vmlinux and on the real one make assets extracts from Debian's bzImage.
func TestParseELFMatchesDebugELF(t *testing.T) {
	images := map[string][]byte{"fake": fakeELF()}
	real := filepath.Join("..", "build", "kernel", "vmlinux")
	if b, err := os.ReadFile(real); err == nil {
		images["Debian vmlinux"] = b
	} else {
		t.Logf("%s not built (make assets): comparing on the fake image only", real)
	}
	for name, img := range images {
		t.Run(name, func(t *testing.T) {
			got, err := ParseELF(bytes.NewReader(img), int64(len(img)))
			if err != nil {
				t.Fatal(err)
			}
			f, err := elf.NewFile(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			want := &ELFKernel{Entry: f.Entry}
			for _, p := range f.Progs {
				if p.Type == elf.PT_LOAD && p.Memsz > 0 {
					want.Segments = append(want.Segments, ELFSegment{Addr: p.Paddr, Offset: int64(p.Off), FileLen: p.Filesz, MemLen: p.Memsz})
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseELFErrors(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name  string
		patch func(b []byte) []byte
		want  error
	}{
		{"32-bit", func(b []byte) []byte { b[elf.EI_CLASS] = byte(elf.ELFCLASS32); return b }, ErrNotKernel},
		{"big-endian", func(b []byte) []byte { b[elf.EI_DATA] = byte(elf.ELFDATA2MSB); return b }, ErrNotKernel},
		{"shared object", func(b []byte) []byte { le.PutUint16(b[16:], uint16(elf.ET_DYN)); return b }, ErrNotKernel},
		{"arm64", func(b []byte) []byte { le.PutUint16(b[18:], uint16(elf.EM_AARCH64)); return b }, ErrNotKernel},
		{"header cut short", func(b []byte) []byte { return b[:40] }, ErrCorrupt},
		{"program headers past the end", func(b []byte) []byte { le.PutUint64(b[32:], 1<<40); return b }, ErrCorrupt},
		{"program header table wraps", func(b []byte) []byte { le.PutUint64(b[32:], ^uint64(0)-8); return b }, ErrCorrupt},
		{"odd program header size", func(b []byte) []byte { le.PutUint16(b[54:], 32); return b }, ErrCorrupt},
		{"too many program headers", func(b []byte) []byte { le.PutUint16(b[56:], 0xffff); return b }, ErrCorrupt},
		{"segment past the file", func(b []byte) []byte { le.PutUint64(b[64+32:], 1<<20); le.PutUint64(b[64+40:], 1<<20); return b }, ErrCorrupt},
		{"file size over memory size", func(b []byte) []byte { le.PutUint64(b[64+40:], 8); return b }, ErrCorrupt},
		{"segment wraps", func(b []byte) []byte { le.PutUint64(b[64+24:], ^uint64(0)-100); return b }, ErrCorrupt},
		{"no PT_LOAD", func(b []byte) []byte { le.PutUint32(b[64:], uint32(elf.PT_NOTE)); return b }, ErrCorrupt},
		{"entry outside", func(b []byte) []byte { le.PutUint64(b[24:], 0x5000000); return b }, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := tt.patch(fakeELF())
			if _, err := ParseELF(bytes.NewReader(img), int64(len(img))); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
