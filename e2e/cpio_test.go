package e2e

import (
	"bytes"
	"slices"
	"testing"
)

// TestCpioRoundTrip: the case archive lists its files with their parent
// directories, in an order the kernel can unpack.
func TestCpioRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	err := writeCpio(&buf, []cpioFile{
		{Name: "case.sh", Mode: 0o755, Data: []byte("echo hi\n")},
		{Name: "case/a/b.txt", Mode: 0o644, Data: []byte("b")},
		{Name: "/case/c.txt", Mode: 0o644},
	})
	if err != nil {
		t.Fatal(err)
	}
	names, err := cpioNames(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"case.sh", "case", "case/a", "case/a/b.txt", "case/c.txt"} {
		if !slices.Contains(names, want) {
			t.Errorf("archive lacks %q: %v", want, names)
		}
	}
	if slices.Index(names, "case/a") > slices.Index(names, "case/a/b.txt") {
		t.Errorf("a file before its directory: %v", names)
	}
}
