package sparseimg

import (
	"bytes"
	"io"
	"testing"
)

// TestRoundTrip packs an image with uniform and mixed blocks and reads it
// back at every offset: mixed blocks come back as they were, uniform ones
// as zeros, reads past the end are short with io.EOF.
func TestRoundTrip(t *testing.T) {
	img := make([]byte, 1000)
	copy(img[64:], "hello, world")                     // a mixed block
	copy(img[256:320], bytes.Repeat([]byte{0xFF}, 64)) // uniform, not zero
	copy(img[383:], "xy")                              // spans two blocks
	copy(img[990:], "tail")                            // in the short last block
	want := bytes.Clone(img)
	clear(want[256:320])
	r := Decode(Encode(img, 64))
	if r.Size() != int64(len(img)) {
		t.Fatalf("size %d", r.Size())
	}
	for off := 0; off <= len(img); off += 7 {
		for _, n := range []int{1, 13, 64, 200} {
			b := make([]byte, n)
			got, err := r.ReadAt(b, int64(off))
			exp := want[off:min(len(want), off+n)]
			if got != len(exp) || !bytes.Equal(b[:got], exp) {
				t.Fatalf("ReadAt(%d, %d) = %d %q, want %q", n, off, got, b[:got], exp)
			}
			if (got < n) != (err == io.EOF) {
				t.Fatalf("ReadAt(%d, %d): %d bytes, err %v", n, off, got, err)
			}
		}
	}
	if r := Decode([]byte{1, 2, 3}); r.Size() != 0 {
		t.Errorf("short input: size %d", r.Size())
	}
}
