package lzop

import (
	"bytes"
	"io"
	"testing"
)

// FuzzLZOPReader feeds arbitrary bytes to the reader; the seeds in
// testdata/fuzz/FuzzLZOPReader were written by the real lzop 1.04 CLI.
func FuzzLZOPReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		n, _ := io.Copy(io.Discard, io.LimitReader(r, 256<<20))
		// LZO1X expands at most 255 times; more output means a bound
		// was not enforced.
		if n > 256*int64(len(b))+1024 {
			t.Fatalf("%d bytes out of %d in", n, len(b))
		}
	})
}
