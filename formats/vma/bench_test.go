package vma

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/vma/vmatest"
)

// BenchmarkRead reads a 32 MiB drive (3/4 of its blocks stored) through a
// plain VMA, a zstd VMA (open = decompress + spool, then read) and, as the
// baseline, the raw source file, in the same run.
func BenchmarkRead(b *testing.B) {
	dir := b.TempDir()
	const size = 32 << 20
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for off := 0; off < size; off += 4096 {
		if (off/4096)%4 == 3 {
			continue // absent block
		}
		for i := off; i < off+4096; i += 8 {
			v := rng.Uint64()
			for k := range 8 {
				data[i+k] = byte(v >> (8 * k))
			}
		}
	}
	raw := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		b.Fatal(err)
	}
	plain := filepath.Join(dir, "b.vma")
	if err := vmatest.WriteFile(plain, vmatest.Archive{UUID: [16]byte{1}, CTime: time.Unix(1, 0),
		Devices: []vmatest.Device{{Name: "drive-scsi0", Data: data}}}); err != nil {
		b.Fatal(err)
	}
	zst := compress(b, plain, "zstd")
	readDisk := func(b *testing.B, d io.ReaderAt) {
		buf := make([]byte, 1<<20)
		for off := int64(0); off < size; off += int64(len(buf)) {
			if _, err := d.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
	b.Run("raw-baseline", func(b *testing.B) {
		f, err := os.Open(raw)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(size)
		for b.Loop() {
			readDisk(b, f)
		}
	})
	for _, tc := range []struct{ name, path string }{{"vma-plain", plain}, {"vma-zstd-open+read", zst}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				im, err := Open(context.Background(), tc.path, model.Options{})
				if err != nil {
					b.Fatal(err)
				}
				readDisk(b, im.Views[0].Disk)
				im.Close()
			}
		})
	}
}
