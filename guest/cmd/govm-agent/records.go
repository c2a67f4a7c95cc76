package main

import (
	"io"
	"os"

	"github.com/govm/govm/internal/agentkit"
)

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
	for n := int64(0); (n+1)*agentkit.RecordSize <= size; n++ {
		if _, err := f.WriteAt(agentkit.Record(n), n*agentkit.RecordSize); err != nil {
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
