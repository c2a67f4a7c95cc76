package virtio

import (
	"encoding/binary"
	"testing"

	"github.com/govm/govm/mem"
)

// Fuzz targets for everything a guest driver controls. Each fills a small
// guest memory with the fuzzer's bytes, so rings, descriptors, requests
// and frames are whatever the fuzzer makes them; the property is that
// nothing panics, nothing reads or writes outside guest memory (mem
// checks every access) and every result is bounded. `make fuzz` runs
// them; `go test` runs the seeds.

const (
	fuzzMem      = seedMemSize // SeedRecorder writes seeds for this memory
	fuzzDesc     = 0x0
	fuzzIndirect = 0x80
	fuzzAvail    = 0xc0
	fuzzUsed     = 0x100
)

// fuzzMemory returns guest memory holding data from address 0.
func fuzzMemory(t *testing.T, data []byte) *mem.Memory {
	raw := make([]byte, fuzzMem)
	copy(raw, data)
	m, err := mem.New(mem.Region{Base: 0, Data: raw})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// seedRing lays out a valid queue of size 8 with one two-buffer chain, as
// a seed the fuzzer mutates.
func seedRing(indirect bool) []byte {
	b := make([]byte, 0xd8)
	le := binary.LittleEndian
	put := func(i int, addr uint64, n uint32, flags, next uint16) {
		d := b[fuzzDesc+16*i:]
		le.PutUint64(d, addr)
		le.PutUint32(d[8:], n)
		le.PutUint16(d[12:], flags)
		le.PutUint16(d[14:], next)
	}
	if indirect {
		put(0, fuzzIndirect, 32, descFlagIndirct, 0)
		for i, d := range [][2]uint64{{0x1000, 16}, {0x2000, 512}} {
			e := b[fuzzIndirect+16*i:]
			le.PutUint64(e, d[0])
			le.PutUint32(e[8:], uint32(d[1]))
			if i == 0 {
				le.PutUint16(e[12:], descFlagNext)
				le.PutUint16(e[14:], 1)
			} else {
				le.PutUint16(e[12:], descFlagWrite)
			}
		}
	} else {
		put(0, 0x1000, 16, descFlagNext, 1)
		put(1, 0x2000, 512, descFlagWrite, 0)
	}
	le.PutUint16(b[fuzzAvail+2:], 1) // avail idx
	le.PutUint16(b[fuzzAvail+4:], 0) // ring[0] = head 0
	return b
}

// fuzzQueue configures a queue over the fuzzed rings; sizeSel picks a
// power of two from 1 to 256.
func fuzzQueue(m *mem.Memory, sizeSel uint8, eventIdx bool) (*Queue, bool) {
	q := &Queue{Size: 1 << (sizeSel % 9), Desc: fuzzDesc, Avail: fuzzAvail, Used: fuzzUsed, EventIdx: eventIdx}
	return q, q.Validate(m, 256) == nil
}

func FuzzVirtqueue(f *testing.F) {
	f.Add(seedRing(false), uint8(3), false)
	f.Add(seedRing(true), uint8(3), true)
	f.Fuzz(func(t *testing.T, data []byte, sizeSel uint8, eventIdx bool) {
		m := fuzzMemory(t, data)
		q, ok := fuzzQueue(m, sizeSel, eventIdx)
		if !ok {
			return
		}
		old := q.UsedIdx()
		for range 2 * int(q.Size) {
			head, chain, ok, err := q.Pop(m)
			if err != nil || !ok {
				break
			}
			if head >= q.Size {
				t.Fatalf("head %d from a queue of %d", head, q.Size)
			}
			if len(chain) > int(q.Size)+maxIndirect {
				t.Fatalf("chain of %d buffers from a queue of %d", len(chain), q.Size)
			}
			for _, d := range chain {
				if _, err := m.Slice(d.Addr, uint64(d.Len)); err != nil {
					t.Fatalf("buffer %#x+%d outside guest memory was accepted", d.Addr, d.Len)
				}
			}
			if err := q.PushUsed(m, head, 0); err != nil {
				t.Fatal(err)
			}
		}
		q.NeedsInterrupt(m, old)
		q.SetAvailEvent(m)
		q.ArmNextAvail(m)
	})
}

// fuzzChain reads up to four descriptors (address, length, flags) from
// the fuzzer's bytes, as a device would get them from a queue: flag bit 0
// makes a buffer the device writes, bit 7 ends the chain after it.
func fuzzChain(b []byte) []Desc {
	var chain []Desc
	for len(b) >= seedDescSize && len(chain) < seedMaxDescs {
		chain = append(chain, Desc{
			Addr:  binary.LittleEndian.Uint64(b) % (fuzzMem + 0x1000), // sometimes past the end
			Len:   binary.LittleEndian.Uint32(b[8:]) % seedMaxLen,
			Write: b[12]&seedWriteDesc != 0,
		})
		if b[12]&seedLastDesc != 0 {
			break
		}
		b = b[seedDescSize:]
	}
	return chain
}

func FuzzBlkRequest(f *testing.F) {
	hdr := func(typ uint32, sector uint64) []byte {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint32(b, typ)
		binary.LittleEndian.PutUint64(b[8:], sector)
		return b
	}
	desc := func(addr uint64, n uint32, flags byte) []byte {
		b := make([]byte, 13)
		binary.LittleEndian.PutUint64(b, addr)
		binary.LittleEndian.PutUint32(b[8:], n)
		b[12] = flags
		return b
	}
	seed := func(typ uint32, sector uint64, data uint32, dataWrite bool) []byte {
		var dir byte
		if dataWrite {
			dir = 1
		}
		s := append(append(desc(0x100, 16, 0), desc(0x2000, data, dir)...), desc(0x900, 1, 0x81)...)
		mem := make([]byte, 0x100)
		return append(append(s, mem[len(s):]...), hdr(typ, sector)...)
	}
	f.Add(seed(BlkTypeIn, 0, 512, true), false)
	f.Add(seed(BlkTypeOut, 7, 1024, false), false)
	f.Add(seed(BlkTypeFlush, 0, 0, false), true)
	f.Add(seed(BlkTypeGetID, 0, 20, true), false)
	f.Add(seed(BlkTypeDiscard, 0, 16, false), false)
	f.Add(seed(BlkTypeIn, 1<<40, 512, true), true)
	f.Fuzz(func(t *testing.T, data []byte, readOnly bool) {
		m := fuzzMemory(t, data)
		chain := fuzzChain(data)
		disk := &memDisk{data: make([]byte, 64<<10)}
		b, err := NewBlk(disk, int64(len(disk.data)), BlkOptions{ReadOnly: readOnly, Serial: "fuzz", Discard: true})
		if err != nil {
			t.Fatal(err)
		}
		var writable uint64
		for _, d := range chain {
			if d.Write {
				writable += uint64(d.Len)
			}
		}
		if n := b.serve(m, &b.queues[0], chain); uint64(n) > writable {
			t.Fatalf("used length %d exceeds the %d writable bytes", n, writable)
		}
	})
}

func FuzzNetTx(f *testing.F) {
	frame := make([]byte, NetHeaderSize+60)
	f.Add(frame, uint64(0), true)
	f.Add(frame[:NetHeaderSize+13], uint64(0), false)
	gso := make([]byte, NetHeaderSize+1514)
	gso[0] = 1 // NEEDS_CSUM
	gso[1] = 1 // GSO TCPv4
	binary.LittleEndian.PutUint16(gso[4:], 1448)
	binary.LittleEndian.PutUint16(gso[6:], 34)
	binary.LittleEndian.PutUint16(gso[8:], 16)
	f.Add(gso, uint64(NetFeatureCsum|NetFeatureHostTSO4), true)
	f.Fuzz(func(t *testing.T, data []byte, features uint64, withHdr bool) {
		_ = CheckTxHeader(data, features)
		m := fuzzMemory(t, data)
		var hdr [NetHeaderSize]byte
		iov := mem.NewIOVec(mem.IOVecMax)
		payload, err := txFrame(m, fuzzChain(data), &hdr, iov, features, withHdr)
		sent := uint64(payload)
		if withHdr {
			sent += NetHeaderSize
		}
		if err == nil && (payload > netMaxFrame || payload < netEthHeader || iov.Bytes() != sent) {
			t.Fatalf("payload %d, %d bytes to send", payload, iov.Bytes())
		}
	})
}

// FuzzPCITransport writes and reads the virtio-PCI BAR (common config,
// notify, ISR, device config, MSI-X table and PBA) and the PCI config
// space in any order, for a virtio-blk device over fuzzed guest memory:
// the driver can negotiate, set up queues, go live, kick and reset in any
// order. Each op is 8 bytes: kind, width, offset (2), value (4).
func FuzzPCITransport(f *testing.F) {
	op := func(kind, width byte, off uint16, v uint32) []byte {
		return []byte{kind, width, byte(off), byte(off >> 8), byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
	}
	var seed []byte
	for _, o := range [][]byte{
		op(2, 2, 4, 6), // PCI command: memory + bus master
		op(0, 1, 0x14, StatusAcknowledge|StatusDriver),
		op(0, 4, 0x08, 1), op(0, 4, 0x0c, 1), // driver features hi: VERSION_1
		op(0, 1, 0x14, StatusAcknowledge|StatusDriver|StatusFeaturesOK),
		op(0, 2, 0x16, 0), op(0, 2, 0x18, 8), // queue 0, size 8
		op(0, 4, 0x20, fuzzDesc), op(0, 4, 0x28, fuzzAvail), op(0, 4, 0x30, fuzzUsed),
		op(0, 2, 0x1c, 1), // queue enable
		op(0, 1, 0x14, StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK),
		op(0, 2, uint16(offNotify), 0), // kick
		op(1, 1, uint16(offISR), 0),
		op(0, 1, 0x14, 0), // reset
	} {
		seed = append(seed, o...)
	}
	f.Add(seedRing(false), seed)
	f.Fuzz(func(t *testing.T, ram, ops []byte) {
		m := fuzzMemory(t, ram)
		b, err := NewBlk(&memDisk{data: make([]byte, 8192)}, 8192, BlkOptions{Serial: "fuzz"})
		if err != nil {
			t.Fatal(err)
		}
		p := NewPCIDevice("fuzz", b, m, nullPlatform{}, 0xc000_0000)
		defer p.Close()
		var buf [8]byte
		for ; len(ops) >= 8; ops = ops[8:] {
			width := []int{1, 2, 4, 8}[ops[1]%4]
			off := uint64(binary.LittleEndian.Uint16(ops[2:])) % BARSize
			data := buf[:width]
			binary.LittleEndian.PutUint32(data[:4], binary.LittleEndian.Uint32(ops[4:]))
			switch ops[0] % 3 {
			case 0:
				p.Write(off, data)
			case 1:
				p.Read(off, data)
			case 2:
				p.cfg.Write(int(off%256), data)
			}
		}
	})
}
