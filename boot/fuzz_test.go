package boot

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"testing"

	"github.com/govm/govm/mem"
)

// fakeELF is a minimal x86_64 vmlinux: one PT_LOAD at 16 MiB holding the
// entry point.
func fakeELF() []byte {
	const ehsize, phsize = 64, 56
	b := make([]byte, ehsize+phsize+64)
	le := binary.LittleEndian
	copy(b, "\x7fELF")
	b[elf.EI_CLASS], b[elf.EI_DATA], b[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], 0x1000000) // entry
	le.PutUint64(b[32:], ehsize)    // phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], 1) // phnum
	p := b[ehsize:]
	le.PutUint32(p, uint32(elf.PT_LOAD))
	le.PutUint64(p[8:], ehsize+phsize) // offset
	le.PutUint64(p[16:], 0x1000000)    // vaddr
	le.PutUint64(p[24:], 0x1000000)    // paddr
	le.PutUint64(p[32:], 64)           // filesz
	le.PutUint64(p[40:], 4096)         // memsz
	return b
}

func TestFakeELFLoads(t *testing.T) {
	img := fakeELF()
	if _, err := Load(testMemory(t, 64<<20), Config{Kernel: bytes.NewReader(img), KernelSize: int64(len(img))}); err != nil {
		t.Fatalf("the fuzz seed must be a valid vmlinux: %v", err)
	}
}

// FuzzLoad feeds the loader any kernel image, initrd and command line:
// a bad one is an error, never a panic or a write outside guest memory
// (mem checks every write), and a good one yields an entry point inside
// guest RAM.
func FuzzLoad(f *testing.F) {
	f.Add(fakeBzImage(defaultFake()), []byte("initrd"), "console=ttyS0")
	f.Add(fakeELF(), []byte{}, "")
	old := defaultFake()
	old.protocol = 0x0200
	f.Add(fakeBzImage(old), []byte("x"), "a=b")
	// One guest RAM for every input a worker runs: allocating and zeroing
	// tens of MiB per input would be most of the time spent. What an
	// earlier input left there does not matter to the property.
	const ram = 24 << 20
	backing := make([]byte, ram)
	f.Fuzz(func(t *testing.T, kernel, initrd []byte, cmdline string) {
		m, err := mem.New(mem.Region{Base: 0, Data: backing})
		if err != nil {
			t.Fatal(err)
		}
		cfg := Config{Kernel: bytes.NewReader(kernel), KernelSize: int64(len(kernel)), Cmdline: cmdline}
		if len(initrd) > 0 {
			cfg.Initrd, cfg.InitrdSize = bytes.NewReader(initrd), int64(len(initrd))
		}
		st, err := Load(m, cfg)
		if err != nil {
			return
		}
		if st.RIP >= ram {
			t.Fatalf("entry %#x outside %d bytes of guest RAM", st.RIP, ram)
		}
	})
}
