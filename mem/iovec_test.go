package mem

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestIOVecAdvance: after a short transfer of n bytes the list holds
// exactly the bytes not yet moved, in order, whether n ends inside a
// buffer or on a boundary.
func TestIOVecAdvance(t *testing.T) {
	for _, tc := range []struct {
		name string
		lens []int
		n    int
	}{
		{"nothing", []int{3, 5}, 0},
		{"inside the first", []int{3, 5}, 2},
		{"a whole buffer", []int{3, 5}, 3},
		{"into the second", []int{3, 5, 7}, 4},
		{"all but one byte", []int{3, 5}, 7},
		{"all", []int{3, 5}, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var all []byte
			v := NewIOVec(len(tc.lens))
			for i, l := range tc.lens {
				b := bytes.Repeat([]byte{byte('a' + i)}, l)
				all = append(all, b...)
				if err := v.AddHost(b); err != nil {
					t.Fatal(err)
				}
			}
			v.Advance(tc.n)
			var left []byte
			for i := range v.Len() {
				left = append(left, v.Buffer(i)...)
			}
			if !bytes.Equal(left, all[tc.n:]) || v.Bytes() != uint64(len(all)-tc.n) {
				t.Errorf("left %q (%d bytes counted), want %q", left, v.Bytes(), all[tc.n:])
			}
		})
	}
}

// TestIOVecFullAt: WriteFullAt and ReadFullAt move every byte at the
// offset; a read that meets the end of the file is io.ErrUnexpectedEOF
// with what was there filled in.
func TestIOVecFullAt(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := [][]byte{[]byte("hello, "), []byte("vectored "), []byte("world")}
	v := NewIOVec(4)
	for _, b := range src {
		if err := v.AddHost(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.WriteFullAt(int(f.Fd()), 100); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 21)
	v.Reset()
	_ = v.AddHost(got[:10])
	_ = v.AddHost(got[10:])
	if err := v.ReadFullAt(int(f.Fd()), 100); err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello, vectored world" {
		t.Fatalf("read back %q", got)
	}
	past := make([]byte, 30)
	v.Reset()
	_ = v.AddHost(past)
	if err := v.ReadFullAt(int(f.Fd()), 100); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read past the end: %v, want io.ErrUnexpectedEOF", err)
	}
	if string(past[:21]) != "hello, vectored world" {
		t.Fatalf("read up to the end: %q", past[:21])
	}
}
