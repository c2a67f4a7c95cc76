package bus

import (
	"bytes"
	"errors"
	"testing"

	"github.com/govm/govm/bus/bustest"
)

func TestBusInsert(t *testing.T) {
	b := New("pio", 0xff)
	d := &bustest.Recorder{}
	if err := b.Insert(0x100, 0x10, "a", d); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		base, size uint64
		want       error
	}{
		{"zero length", 0x200, 0, ErrZeroLength},
		{"same range", 0x100, 0x10, ErrOverlap},
		{"overlaps start", 0xf8, 0x10, ErrOverlap},
		{"overlaps end", 0x10f, 1, ErrOverlap},
		{"inside", 0x104, 2, ErrOverlap},
		{"covers", 0x0, 0x1000, ErrOverlap},
		{"wraps", ^uint64(0) - 1, 4, ErrOverlap},
		{"adjacent below", 0xf0, 0x10, nil},
		{"adjacent above", 0x110, 0x10, nil},
	}
	for _, tt := range tests {
		err := b.Insert(tt.base, tt.size, tt.name, d)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s: Insert(%#x, %#x) = %v, want %v", tt.name, tt.base, tt.size, err, tt.want)
		}
	}
}

func TestBusDispatch(t *testing.T) {
	b := New("pio", 0xff)
	a, c := &bustest.Recorder{}, &bustest.Recorder{}
	b.Insert(0x3f8, 8, "a", a)
	b.Insert(0x600, 3, "c", c)
	buf := []byte{0, 0}
	if !b.Read(0x3fa, buf) || a.Reads[0].Off != 2 || buf[0] != 0xa2 {
		t.Fatalf("read reached %+v, buf % x", a.Reads, buf)
	}
	// An access straddling the end of a range is not the device's.
	if b.Write(0x3ff, []byte{1, 2}) {
		t.Fatal("straddling write claimed")
	}
	if b.Read(0x500, buf) || !bytes.Equal(buf, []byte{0xff, 0xff}) {
		t.Fatalf("unclaimed read = % x, want ff ff", buf)
	}
	if !b.Write(0x602, []byte{9}) || c.Writes[0].Off != 2 {
		t.Fatalf("write reached %+v", c.Writes)
	}
}
