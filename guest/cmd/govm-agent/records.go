package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// The crash-consistency records (govm.action=records, and the host's
// govm-agent checkrecs): record n is recordSize bytes at n*recordSize on
// /dev/vda, a header naming n and a body every byte of which depends on n
// and its position, so a lost, stale or torn record cannot pass.
const recordSize = 4096

func record(n int64) []byte {
	b := make([]byte, recordSize)
	h := fmt.Sprintf("GOVM-REC %08d\n", n)
	copy(b, h)
	for i := len(h); i < recordSize; i++ {
		b[i] = byte((n*131 + int64(i)*7) % 251)
	}
	return b
}

// writeRecords writes records 0, 1, ... to /dev/vda, each followed by an
// fsync (a virtio-blk FLUSH), and says GOVM-FLUSHED n once record n is
// durable. It stops at the end of the disk and waits to be killed.
func writeRecords() {
	f, err := os.OpenFile("/dev/vda", os.O_RDWR, 0)
	if err != nil {
		say("GOVM-RECORDS-ERROR open: %v", err)
		return
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		say("GOVM-RECORDS-ERROR size: %v", err)
		return
	}
	say("GOVM-RECORDS-WRITING")
	for n := int64(0); (n+1)*recordSize <= size; n++ {
		if _, err := f.WriteAt(record(n), n*recordSize); err != nil {
			say("GOVM-RECORDS-ERROR write %d: %v", n, err)
			return
		}
		if err := f.Sync(); err != nil {
			say("GOVM-RECORDS-ERROR fsync %d: %v", n, err)
			return
		}
		say("GOVM-FLUSHED %d", n)
	}
	say("GOVM-RECORDS-DONE")
}

// checkRecords verifies records 0..last in the disk image at path and
// says GOVM-RECS-OK last, or GOVM-RECS-BAD n for the first that is wrong.
func checkRecords(path, lastArg string) error {
	last, err := strconv.ParseInt(lastArg, 10, 64)
	if err != nil {
		return fmt.Errorf("checkrecs: %q is not a record number", lastArg)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	got := make([]byte, recordSize)
	for n := int64(0); n <= last; n++ {
		if _, err := f.ReadAt(got, n*recordSize); err != nil || !bytes.Equal(got, record(n)) {
			printLine("GOVM-RECS-BAD %d", n)
			return nil
		}
	}
	printLine("GOVM-RECS-OK %d", last)
	return nil
}
