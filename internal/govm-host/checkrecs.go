package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/govm/govm/internal/agentkit"
)

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
	got := make([]byte, agentkit.RecordSize)
	for n := int64(0); n <= last; n++ {
		if _, err := f.ReadAt(got, n*agentkit.RecordSize); err != nil || !bytes.Equal(got, agentkit.Record(n)) {
			agentkit.PrintLine("GOVM-RECS-BAD %d", n)
			return nil
		}
	}
	agentkit.PrintLine("GOVM-RECS-OK %d", last)
	return nil
}
