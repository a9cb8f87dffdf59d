package fsys

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestRunFile reads a file through runs laid out out of order, with a hole,
// an unwritten run and slack past the size, at every offset and length.
func TestRunFile(t *testing.T) {
	disk := []byte("....ABCD....EFGH....IJKL....")
	runs := []Run{
		{Off: 12, Len: 4, FileOff: 4},                   // EFGH
		{Off: 4, Len: 4, FileOff: 0},                    // ABCD
		{Off: 20, Len: 4, FileOff: 12, Unwritten: true}, // reads zeros
		{Off: 20, Len: 8, FileOff: 16},                  // IJKL...., size cuts it
	}
	want := []byte("ABCDEFGH\x00\x00\x00\x00\x00\x00\x00\x00IJ")
	f := NewRunFile(bytes.NewReader(disk), int64(len(want)), runs)
	if f.Size() != int64(len(want)) {
		t.Fatalf("size %d", f.Size())
	}
	for off := 0; off <= len(want)+1; off++ {
		for n := 0; n <= len(want)+2; n++ {
			buf := bytes.Repeat([]byte{'#'}, n)
			got, err := f.ReadAt(buf, int64(off))
			exp := []byte{}
			if off < len(want) {
				exp = want[off:min(len(want), off+n)]
			}
			if got != len(exp) || !bytes.Equal(buf[:got], exp) {
				t.Fatalf("ReadAt(%d bytes, %d) = %d %q, want %q", n, off, got, buf[:got], exp)
			}
			if atEnd := got < n || off >= len(want); atEnd != errors.Is(err, io.EOF) {
				t.Fatalf("ReadAt(%d bytes, %d): %d bytes, err %v", n, off, got, err)
			}
		}
	}
	c := NewRunFile(bytes.NewReader(disk), 4, []Run{{Off: 4, Len: 4, Compressed: true}})
	if _, err := c.ReadAt(make([]byte, 4), 0); !errors.Is(err, ErrCompressed) {
		t.Errorf("compressed run: %v", err)
	}
	short := NewRunFile(bytes.NewReader(disk), 8, []Run{{Off: 24, Len: 8}})
	if _, err := short.ReadAt(make([]byte, 8), 0); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("run past the device: %v", err)
	}
}
