// Package fusetest builds FUSE requests and reads replies the way a guest
// kernel's virtio-fs driver does, for tests of the share and the device.
package fusetest

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Opcodes (include/uapi/linux/fuse.h, enum fuse_opcode).
const (
	OpLookup      = 1
	OpForget      = 2
	OpGetattr     = 3
	OpSetattr     = 4
	OpReadlink    = 5
	OpSymlink     = 6
	OpMknod       = 8
	OpMkdir       = 9
	OpUnlink      = 10
	OpRmdir       = 11
	OpRename      = 12
	OpLink        = 13
	OpOpen        = 14
	OpRead        = 15
	OpWrite       = 16
	OpRelease     = 18
	OpSetxattr    = 21
	OpInit        = 26
	OpOpendir     = 27
	OpIoctl       = 39
	OpCreate      = 35
	OpReaddirplus = 44

	RootID = 1
	// InitMinor is the protocol minor version the requests speak (Linux 6.1).
	InitMinor = 37
)

// Request encodes a request: the fixed input struct (its InHeader filled
// in here) followed by NUL-terminated names and any data.
func Request(op uint32, unique, node uint64, in any, names []string, data []byte) []byte {
	var body bytes.Buffer
	if in != nil {
		if err := binary.Write(&body, binary.LittleEndian, in); err != nil {
			panic(err)
		}
	} else {
		body.Write(make([]byte, binary.Size(fuse.InHeader{})))
	}
	for _, n := range names {
		body.WriteString(n)
		body.WriteByte(0)
	}
	body.Write(data)
	b := body.Bytes()
	h := fuse.InHeader{Length: uint32(len(b)), Opcode: op, Unique: unique, NodeId: node}
	var hb bytes.Buffer
	binary.Write(&hb, binary.LittleEndian, &h)
	copy(b, hb.Bytes())
	return b
}

// Init is the INIT request a Linux 6.1 guest sends first.
func Init(unique uint64) []byte {
	return Request(OpInit, unique, 0, &fuse.InitIn{Major: 7, Minor: InitMinor, MaxReadAhead: 128 << 10}, nil, nil)
}

// Reply is a decoded reply.
type Reply struct {
	Len    uint32
	Errno  int32 // negative errno, or 0
	Unique uint64
	Body   []byte
}

// Decode splits a reply of n bytes into header and body.
func Decode(b []byte) (Reply, error) {
	if len(b) < 16 {
		return Reply{}, fmt.Errorf("reply of %d bytes: shorter than its header", len(b))
	}
	le := binary.LittleEndian
	r := Reply{Len: le.Uint32(b), Errno: int32(le.Uint32(b[4:])), Unique: le.Uint64(b[8:])}
	if int(r.Len) != len(b) {
		return r, fmt.Errorf("reply header says %d bytes, device wrote %d", r.Len, len(b))
	}
	r.Body = b[16:]
	return r, nil
}

// Entry decodes a LOOKUP/MKDIR/CREATE reply body's entry.
func (r Reply) Entry() fuse.EntryOut {
	var e fuse.EntryOut
	binary.Read(bytes.NewReader(r.Body), binary.LittleEndian, &e)
	return e
}

// Open decodes an OPEN reply body (or CREATE's, after its entry).
func (r Reply) Open(off int) fuse.OpenOut {
	var o fuse.OpenOut
	binary.Read(bytes.NewReader(r.Body[off:]), binary.LittleEndian, &o)
	return o
}

// EntrySize is the size of an entry in a reply.
var EntrySize = binary.Size(fuse.EntryOut{})

// RenameIn is fuse_rename_in, what RENAME carries (RENAME2 adds flags).
type RenameIn struct {
	fuse.InHeader
	Newdir uint64
}
