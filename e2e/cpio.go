package e2e

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// cpioFile is one regular file for writeCpio.
type cpioFile struct {
	Name string // relative path; parent directories are created
	Mode uint32 // permission bits
	Data []byte
}

// cpio "newc" format (the kernel's Documentation/driver-api/early-userspace/
// buffer-format.rst): a 110-byte ASCII header per entry, name and data each
// padded to 4 bytes, ended by a TRAILER!!! entry.
const (
	cpioMagic   = "070701"
	cpioModeReg = 0o100000
	cpioModeDir = 0o040000
	cpioTrailer = "TRAILER!!!"
)

func writeCpioEntry(w io.Writer, ino int, name string, mode uint32, data []byte) error {
	hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		cpioMagic, ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := []byte(hdr + name + "\x00")
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	buf = append(buf, data...)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	_, err := w.Write(buf)
	return err
}

// writeCpio appends an archive holding files to w. The kernel unpacks
// concatenated archives in order, so this extends a base initramfs.
func writeCpio(w io.Writer, files []cpioFile) error {
	ino := 1 << 20 // clear of the base archive's inode numbers
	dirs := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := path.Dir(f.Name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			dirs[parents[i]] = true
			if err := writeCpioEntry(w, ino, parents[i], cpioModeDir|0o755, nil); err != nil {
				return err
			}
			ino++
		}
		if err := writeCpioEntry(w, ino, strings.TrimPrefix(f.Name, "/"), cpioModeReg|f.Mode, f.Data); err != nil {
			return err
		}
		ino++
	}
	return writeCpioEntry(w, 0, cpioTrailer, 0, nil)
}

// cpioNames lists the entry names of a newc archive (symlinks with their
// targets as "name -> target"), for tests that check what an image holds.
func cpioNames(data []byte) ([]string, error) {
	var names []string
	for off := 0; ; {
		if off+110 > len(data) {
			return nil, fmt.Errorf("cpio: truncated header at %d", off)
		}
		h := data[off : off+110]
		if string(h[:6]) != cpioMagic {
			return nil, fmt.Errorf("cpio: bad magic at %d", off)
		}
		field := func(i int) (int, error) {
			var v int
			_, err := fmt.Sscanf(string(h[6+8*i:14+8*i]), "%08x", &v)
			return v, err
		}
		mode, err1 := field(1)
		size, err2 := field(6)
		nameLen, err3 := field(11)
		if err1 != nil || err2 != nil || err3 != nil || nameLen < 1 {
			return nil, fmt.Errorf("cpio: bad header at %d", off)
		}
		nameEnd := off + 110 + nameLen
		dataStart := (nameEnd + 3) &^ 3
		dataEnd := dataStart + size
		if dataEnd > len(data) {
			return nil, fmt.Errorf("cpio: entry at %d runs past the end", off)
		}
		name := string(data[off+110 : nameEnd-1])
		if name == cpioTrailer {
			return names, nil
		}
		if mode&0o170000 == 0o120000 {
			name += " -> " + string(data[dataStart:dataEnd])
		}
		names = append(names, name)
		off = (dataEnd + 3) &^ 3
	}
}
