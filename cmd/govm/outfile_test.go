package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOutFile(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old")
	if err := os.WriteFile(old, []byte("a longer line left by the last run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       string // the file afterwards; "" for a non-file
	}{
		{"new file", filepath.Join(dir, "new"), "hello\n"},
		{"old file emptied first", old, "hello\n"},
		{"not a regular file", os.DevNull, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := createOut(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := o.Write([]byte("hello\n")); err != nil {
				t.Fatal(err)
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				return
			}
			if got, _ := os.ReadFile(tt.path); string(got) != tt.want {
				t.Fatalf("file holds %q, want %q", got, tt.want)
			}
		})
	}
	if _, err := createOut(filepath.Join(dir, "no", "such", "dir")); err == nil {
		t.Fatal("a path in a missing directory was accepted")
	}
}
