package boot

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// hdrKernelVersion is the setup header's kernel_version: if non-zero, the
// offset less 0x200 of a NUL-terminated version string in the setup code
// (boot.rst, "kernel_version"), which begins with the release uname -r
// prints.
const (
	hdrKernelVersion = 0x20e
	kernelVersionMax = 256
)

// KernelRelease reads the release ("6.1.0-28-cloud-amd64") from a bzImage's
// kernel_version string. An ELF vmlinux has none.
func KernelRelease(r io.ReaderAt, size int64) (string, error) {
	k, err := ParseBzImage(r, size)
	if err != nil {
		return "", err
	}
	off := binary.LittleEndian.Uint16(k.Header[hdrKernelVersion-hdrSetupSects:])
	if off == 0 {
		return "", fmt.Errorf("%w: no kernel_version string", ErrCorrupt)
	}
	at := int64(off) + hdrJump
	setupLen := int64(k.SetupSects+1) * sectorSize
	if at >= setupLen {
		return "", fmt.Errorf("%w: kernel_version at %#x, past the setup code", ErrCorrupt, at)
	}
	buf := make([]byte, min(kernelVersionMax, setupLen-at))
	if _, err := r.ReadAt(buf, at); err != nil {
		return "", err
	}
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	release, _, _ := bytes.Cut(buf, []byte(" "))
	if len(release) == 0 {
		return "", fmt.Errorf("%w: empty kernel_version string", ErrCorrupt)
	}
	return string(release), nil
}
