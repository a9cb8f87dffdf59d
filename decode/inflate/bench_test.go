package inflate

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// docsCorpus reads the .gz files under /usr/share/doc (regular files
// only: links would count a file twice) and their decoded size.
func docsCorpus(b *testing.B) (files [][]byte, size int64) {
	b.Helper()
	filepath.WalkDir("/usr/share/doc", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(p, ".gz") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		z, err := kgzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil
		}
		z.Multistream(false)
		n, err := io.Copy(io.Discard, z)
		if err != nil {
			return nil // not one gzip member: left out for both
		}
		files = append(files, data)
		size += n
		return nil
	})
	if len(files) == 0 {
		b.Skip("no .gz files under /usr/share/doc")
	}
	return files, size
}

// BenchmarkInflateDocs inflates the Debian documentation's .gz files
// (mostly text: changelogs, READMEs, man-like pages), with klauspost's
// gzip reader and with this package's, reporting MB/s of output.
func BenchmarkInflateDocs(b *testing.B) {
	files, size := docsCorpus(b)
	b.Logf("%d files, %d bytes decoded", len(files), size)
	br := bufio.NewReader(nil)
	// As the decode package uses them: a new reader for each stream.
	b.Run("klauspost", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			for _, f := range files {
				br.Reset(bytes.NewReader(f))
				z, err := kgzip.NewReader(br)
				if err != nil {
					b.Fatal(err)
				}
				z.Multistream(false)
				if _, err := io.Copy(io.Discard, z); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("inflate", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			for _, f := range files {
				br.Reset(bytes.NewReader(f))
				z, err := NewGzipReader(br)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, z); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	// One reader, Reset for each stream: the decoding alone.
	b.Run("klauspost-reset", func(b *testing.B) {
		b.SetBytes(size)
		var z kgzip.Reader
		for b.Loop() {
			for _, f := range files {
				br.Reset(bytes.NewReader(f))
				if err := z.Reset(br); err != nil {
					b.Fatal(err)
				}
				z.Multistream(false)
				if _, err := io.Copy(io.Discard, &z); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("inflate-reset", func(b *testing.B) {
		b.SetBytes(size)
		var z GzipReader
		for b.Loop() {
			for _, f := range files {
				br.Reset(bytes.NewReader(f))
				if err := z.Reset(br); err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, &z); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
