package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/govm/govm/machine"
	"github.com/govm/govm/virtio"
)

// parseDisk parses --disk PATH[,ro][,serial=ID][,queues=N].
func parseDisk(spec string) (machine.Disk, error) {
	parts := strings.Split(spec, ",")
	d := machine.Disk{Path: parts[0]}
	if d.Path == "" {
		return d, fmt.Errorf("--disk %q: no path", spec)
	}
	for _, p := range parts[1:] {
		switch {
		case p == "ro":
			d.ReadOnly = true
		case p == "rw":
			d.ReadOnly = false
		case strings.HasPrefix(p, "serial="):
			d.Serial = strings.TrimPrefix(p, "serial=")
			if len(d.Serial) > 20 {
				return d, fmt.Errorf("--disk %q: serial longer than 20 bytes", spec)
			}
		case strings.HasPrefix(p, "queues="):
			n, err := strconv.Atoi(strings.TrimPrefix(p, "queues="))
			if err != nil || n < 1 || n > virtio.BlkMaxQueues {
				return d, fmt.Errorf("--disk %q: queues wants a number from 1 to %d", spec, virtio.BlkMaxQueues)
			}
			d.Queues = n
		default:
			return d, fmt.Errorf("--disk %q: unknown option %q (want ro, rw, serial=ID or queues=N)", spec, p)
		}
	}
	return d, nil
}

// parseDisks parses every --disk and refuses one file given twice.
func parseDisks(specs []string) ([]machine.Disk, error) {
	var disks []machine.Disk
	var seen []os.FileInfo
	for _, s := range specs {
		d, err := parseDisk(s)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(d.Path)
		if err != nil {
			return nil, fmt.Errorf("--disk %s: %w", d.Path, unwrapPath(err))
		}
		if st.IsDir() {
			return nil, fmt.Errorf("--disk %s: is a directory", d.Path)
		}
		for _, o := range seen {
			if os.SameFile(o, st) {
				return nil, fmt.Errorf("--disk %s: the same file is already a disk", d.Path)
			}
		}
		seen = append(seen, st)
		disks = append(disks, d)
	}
	return disks, nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
