package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/govm/govm/mem"
)

// fakeBzImage builds a bzImage-shaped file: a setup header with the given
// protocol and flags, setupSects sectors of setup, and kernelLen bytes of
// "protected-mode kernel" filled with a pattern.
type fakeOpts struct {
	protocol   uint16
	xload      uint16
	loadFlags  uint8
	setupSects uint8
	kernelLen  int
	initSize   uint32
	pref       uint64
	initrdMax  uint32
	cmdlineMax uint32
	noMagic    bool
}

func defaultFake() fakeOpts {
	return fakeOpts{
		protocol: 0x020f, xload: xlfKernel64 | xlfCanBeLoadedAbove4G, loadFlags: loadFlagLoadedHigh,
		setupSects: 3, kernelLen: 8192, initSize: 0x20000, pref: DefaultKernelAddr,
		initrdMax: 0x7fffffff, cmdlineMax: 2047,
	}
}

func fakeBzImage(o fakeOpts) []byte {
	setupLen := (int(o.setupSects) + 1) * sectorSize
	b := make([]byte, setupLen+o.kernelLen)
	le := binary.LittleEndian
	b[hdrSetupSects] = o.setupSects
	if !o.noMagic {
		le.PutUint16(b[hdrBootFlag:], bootFlagMagic)
		le.PutUint32(b[hdrMagic:], headerMagic)
	}
	b[hdrJump] = 0xeb
	b[hdrJump+1] = byte(hdrEnd - hdrMagic) // header ends at 0x268
	le.PutUint16(b[hdrVersion:], o.protocol)
	b[hdrLoadFlags] = o.loadFlags
	le.PutUint32(b[hdrInitrdAddrMax:], o.initrdMax)
	le.PutUint32(b[hdrKernelAlign:], 0x200000)
	b[hdrRelocatable] = 1
	le.PutUint16(b[hdrXLoadFlags:], o.xload)
	le.PutUint32(b[hdrCmdlineSize:], o.cmdlineMax)
	le.PutUint64(b[hdrPrefAddress:], o.pref)
	le.PutUint32(b[hdrInitSize:], o.initSize)
	for i := setupLen; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

func TestParseBzImage(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*fakeOpts)
		post    func([]byte)
		trunc   int
		wantErr error
	}{
		{name: "valid"},
		{name: "no magic", mod: func(o *fakeOpts) { o.noMagic = true }, wantErr: ErrNotKernel},
		{name: "protocol 2.11", mod: func(o *fakeOpts) { o.protocol = 0x020b }, wantErr: ErrProtocolOld},
		{name: "no 64-bit entry", mod: func(o *fakeOpts) { o.xload = 0 }, wantErr: ErrNot64Bit},
		{name: "zImage", mod: func(o *fakeOpts) { o.loadFlags = 0 }, wantErr: ErrCorrupt},
		{name: "init_size too small", mod: func(o *fakeOpts) { o.initSize = 16 }, wantErr: ErrCorrupt},
		{name: "setup past end", post: func(b []byte) { b[hdrSetupSects] = 200 }, wantErr: ErrCorrupt},
		{name: "tiny file", trunc: 100, wantErr: ErrNotKernel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaultFake()
			if tt.mod != nil {
				tt.mod(&o)
			}
			img := fakeBzImage(o)
			if tt.post != nil {
				tt.post(img)
			}
			if tt.trunc > 0 {
				img = img[:tt.trunc]
			}
			k, err := ParseBzImage(bytes.NewReader(img), int64(len(img)))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Protocol != 0x020f || k.SetupSects != 3 || k.KernelLen != uint64(o.kernelLen) || k.LoadAddr() != DefaultKernelAddr {
				t.Fatalf("parsed %+v", k)
			}
			if len(k.Header) != hdrEnd-hdrSetupSects {
				t.Fatalf("header of %d bytes", len(k.Header))
			}
		})
	}
}

func testMemory(t *testing.T, size int) *mem.Memory {
	t.Helper()
	m, err := mem.New(mem.Region{Base: 0, Data: make([]byte, size)})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoadBzImageGolden(t *testing.T) {
	const ramSize = 64 << 20
	m := testMemory(t, ramSize)
	o := defaultFake()
	img := fakeBzImage(o)
	initrd := bytes.Repeat([]byte{0xab}, 3*pageSize+5)
	st, err := Load(m, Config{
		Kernel: bytes.NewReader(img), KernelSize: int64(len(img)),
		Initrd: bytes.NewReader(initrd), InitrdSize: int64(len(initrd)),
		Cmdline: "console=ttyS0 hello",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Registers: 64-bit entry at load address + 0x200, RSI = zero page.
	if st.RIP != DefaultKernelAddr+entry64Offset || st.RSI != ZeroPageAddr || st.CR3 != PML4Addr {
		t.Fatalf("state %+v", st)
	}
	if st.EFER != eferLME|eferLMA || st.CR0&cr0PG == 0 || st.CR4&cr4PAE == 0 || st.RFLAGS != 2 {
		t.Fatalf("mode bits %+v", st)
	}
	if st.CS.Selector != 0x10 || !st.CS.L || st.CS.DB || st.DS.Selector != 0x18 {
		t.Fatalf("segments CS %+v DS %+v", st.CS, st.DS)
	}
	// Kernel bytes at the load address.
	setupLen := (int(o.setupSects) + 1) * sectorSize
	got := make([]byte, o.kernelLen)
	m.ReadAt(got, DefaultKernelAddr)
	if !bytes.Equal(got, img[setupLen:]) {
		t.Fatal("kernel not at its load address")
	}
	zp := make([]byte, bpSize)
	m.ReadAt(zp, ZeroPageAddr)
	le := binary.LittleEndian
	// Command line.
	if ptr := le.Uint32(zp[hdrCmdLinePtr:]); ptr != CmdlineAddr {
		t.Fatalf("cmd_line_ptr %#x", ptr)
	}
	cl := make([]byte, 20)
	m.ReadAt(cl, CmdlineAddr)
	if string(cl) != "console=ttyS0 hello\x00" {
		t.Fatalf("cmdline %q", cl)
	}
	// Initrd: as high as possible, page aligned, inside RAM.
	wantInitrd := uint32((ramSize - len(initrd)) &^ (pageSize - 1))
	if a, n := le.Uint32(zp[hdrRamdiskImage:]), le.Uint32(zp[hdrRamdiskSize:]); a != wantInitrd || n != uint32(len(initrd)) {
		t.Fatalf("initrd at %#x size %d, want %#x", a, n, wantInitrd)
	}
	gotInitrd := make([]byte, len(initrd))
	m.ReadAt(gotInitrd, uint64(wantInitrd))
	if !bytes.Equal(gotInitrd, initrd) {
		t.Fatal("initrd bytes differ")
	}
	// Loader fields.
	if zp[hdrTypeOfLoader] != loaderTypeUndefined || zp[hdrLoadFlags]&loadFlagLoadedHigh == 0 {
		t.Fatalf("type_of_loader %#x loadflags %#x", zp[hdrTypeOfLoader], zp[hdrLoadFlags])
	}
	if le.Uint32(zp[hdrMagic:]) != headerMagic {
		t.Fatal("setup header not copied")
	}
	// e820 golden.
	want := []E820Entry{
		{0, EBDAStart, E820RAM},
		{EBDAStart, HighMemStart - EBDAStart, E820Reserved},
		{HighMemStart, ramSize - HighMemStart, E820RAM},
	}
	if n := int(zp[bpE820Entries]); n != len(want) {
		t.Fatalf("%d e820 entries", n)
	}
	for i, w := range want {
		off := bpE820Table + i*e820EntrySize
		g := E820Entry{le.Uint64(zp[off:]), le.Uint64(zp[off+8:]), E820Type(le.Uint32(zp[off+16:]))}
		if g != w {
			t.Errorf("e820[%d] = %+v, want %+v", i, g, w)
		}
	}
}

func TestE820WithHighRAM(t *testing.T) {
	m, err := mem.New(
		mem.Region{Base: 0, Data: make([]byte, 2<<20)},
		mem.Region{Base: 1 << 32, Data: make([]byte, 1<<20)},
	)
	if err != nil {
		t.Fatal(err)
	}
	got := E820Map(m)
	want := []E820Entry{
		{0, EBDAStart, E820RAM},
		{EBDAStart, HighMemStart - EBDAStart, E820Reserved},
		{HighMemStart, 1 << 20, E820RAM},
		{1 << 32, 1 << 20, E820RAM},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		ram     int
		cmdline string
		initrd  int
		short   int // bytes the initrd file lacks of the size it claims
		wantErr error
	}{
		{name: "initrd shorter than its size", ram: 64 << 20, initrd: 1 << 20, short: 1, wantErr: io.EOF},
		{name: "cmdline too long", ram: 64 << 20, cmdline: string(bytes.Repeat([]byte{'a'}, 2048)), wantErr: ErrCmdlineTooBig},
		{name: "initrd larger than RAM", ram: 64 << 20, initrd: 60 << 20, wantErr: ErrInitrdTooBig},
		{name: "kernel beyond RAM", ram: 16 << 20, wantErr: ErrKernelTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMemory(t, tt.ram)
			img := fakeBzImage(defaultFake())
			cfg := Config{Kernel: bytes.NewReader(img), KernelSize: int64(len(img)), Cmdline: tt.cmdline}
			if tt.initrd > 0 {
				cfg.Initrd, cfg.InitrdSize = bytes.NewReader(make([]byte, tt.initrd-tt.short)), int64(tt.initrd)
			}
			if _, err := Load(m, cfg); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestPageTablesGolden(t *testing.T) {
	m := testMemory(t, 1<<20)
	if err := writePageTables(m); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr uint64
		want uint64
	}{
		{PML4Addr, PDPTAddr | 3},
		{PML4Addr + 8, 0}, // only the first 512 GiB slot
		{PDPTAddr, PDAddr | 3},
		{PDPTAddr + 3*8, (PDAddr + 3*pageSize) | 3},
		{PDPTAddr + 4*8, 0},
		{PDAddr, 0x83},
		{PDAddr + 8, 0x200000 | 0x83},
		{PDAddr + 3*pageSize + 511*8, 0xffe00000 | 0x83}, // last 2 MiB below 4 GiB
	}
	for _, tt := range tests {
		if got, _ := m.Uint64(tt.addr); got != tt.want {
			t.Errorf("entry at %#x = %#x, want %#x", tt.addr, got, tt.want)
		}
	}
}

func TestGDTGolden(t *testing.T) {
	g := gdtTable()
	want := [gdtEntries]uint64{0, 0, 0x00af9b000000ffff, 0x00cf93000000ffff, 0x008f8b000000ffff}
	if g != want {
		t.Fatalf("GDT = %#x, want %#x", g, want)
	}
	cs := segmentFromDesc(SelectorCS, descCode64, 0, 0xfffff)
	if cs.Type != 0xb || !cs.S || !cs.Present || !cs.L || cs.DB || !cs.G || cs.Limit != 0xffffffff {
		t.Fatalf("CS %+v", cs)
	}
}

func TestPlaceInitrdAvoidsKernel(t *testing.T) {
	m := testMemory(t, 64<<20)
	// The only room below the limit is under the kernel's end.
	if _, err := placeInitrd(m, 8<<20, 0x1fffff, 0x1000000); !errors.Is(err, ErrInitrdTooBig) {
		t.Fatalf("err = %v", err)
	}
	a, err := placeInitrd(m, 8<<20, 0xffffffff, 0x1000000)
	if err != nil || a != 56<<20 {
		t.Fatalf("addr %#x err %v", a, err)
	}
}
