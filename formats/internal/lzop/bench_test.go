package lzop

import (
	"bytes"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// BenchmarkRead decompresses a file written by the real lzop CLI; the
// gzip baseline decompresses the same bytes gzip-compressed
// (klauspost/compress, as the other readers use) in the same run.
func BenchmarkRead(b *testing.B) {
	var data []byte
	for len(data) < 8<<20 {
		data = append(data, inputs()["mixed"]...)
	}
	z := compress(b, b.TempDir(), "bench", data, false)
	b.Run("lzop", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			r, err := NewReader(bytes.NewReader(z))
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
				b.Fatal(n, err)
			}
		}
	})
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(data)
	w.Close()
	b.Run("gzip-baseline", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			r, err := gzip.NewReader(bytes.NewReader(gz.Bytes()))
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(data)) {
				b.Fatal(n, err)
			}
		}
	})
}
