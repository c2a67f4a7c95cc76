package main

import (
	"os"
	"sync"
)

// outFile is an output file (--console-log, --metrics) opened at once, so
// a bad path fails before the guest starts, and emptied on another
// thread: truncating a file ext4 still holds in delayed allocation makes
// the kernel write it out first (auto_da_alloc), a few milliseconds that
// would otherwise come before the guest's first instruction when the
// same path is reused run after run. Writes wait for the truncation.
type outFile struct {
	f     *os.File
	ready chan struct{}
	once  sync.Once
	err   error // from the truncation
}

// createOut opens path for writing, creating it if needed, and starts
// emptying it if it is a regular file.
func createOut(path string) (*outFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	o := &outFile{f: f, ready: make(chan struct{})}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		close(o.ready) // a FIFO, a terminal, /dev/null: nothing to empty
		return o, nil
	}
	go func() {
		o.err = f.Truncate(0)
		close(o.ready)
	}()
	return o, nil
}

// Write appends p once the file is empty.
func (o *outFile) Write(p []byte) (int, error) {
	<-o.ready
	if o.err != nil {
		return 0, o.err
	}
	return o.f.Write(p)
}

// Close waits for the truncation and closes the file (once).
func (o *outFile) Close() error {
	<-o.ready
	var err error
	o.once.Do(func() { err = o.f.Close() })
	return err
}
