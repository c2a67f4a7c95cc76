package e2e

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// cpioFile is one regular file for writeCpio.
type cpioFile struct {
	Name string // relative path; parent directories are created
	Mode uint32 // permission bits
	Data []byte
}

// writeCpio appends a newc archive holding files, with their parent
// directories, to w. The kernel unpacks concatenated archives in order,
// so this extends a base initramfs.
func writeCpio(w io.Writer, files []cpioFile) error {
	recs := make([]cpio.Record, 0, len(files))
	for _, f := range files {
		recs = append(recs, cpio.StaticRecord(f.Data, cpio.Info{
			Name: strings.TrimPrefix(f.Name, "/"),
			Mode: cpio.S_IFREG | uint64(f.Mode),
		}))
	}
	rw := cpio.NewDedupWriter(cpio.Newc.Writer(w))
	if err := cpio.WriteRecordsAndDirs(rw, recs); err != nil {
		return fmt.Errorf("cpio: %w", err)
	}
	return cpio.WriteTrailer(rw)
}

// cpioNames lists the entry names of a newc archive (symlinks with their
// targets as "name -> target"), for tests that check what an image holds.
func cpioNames(data []byte) ([]string, error) {
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(data)))
	if err != nil {
		return nil, fmt.Errorf("cpio: %w", err)
	}
	var names []string
	for _, r := range recs {
		name := r.Name
		if r.Mode&cpio.S_IFMT == cpio.S_IFLNK {
			target, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
			if err != nil {
				return nil, fmt.Errorf("cpio: %s: %w", r.Name, err)
			}
			name += " -> " + string(target)
		}
		names = append(names, name)
	}
	return names, nil
}
