package parallels

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

const benchSize = 64 << 20

// benchFixture writes 64 MiB of incompressible data as raw and as a
// parallels image made by qemu-img.
func benchFixture(b *testing.B) (rawPath, imgPath string) {
	b.Helper()
	testutil.RequireTool(b, "qemu-img")
	dir := b.TempDir()
	rawPath = filepath.Join(dir, "bench.raw")
	data := make([]byte, benchSize)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	if err := os.WriteFile(rawPath, data, 0o644); err != nil {
		b.Fatal(err)
	}
	imgPath = filepath.Join(dir, "bench.img")
	testutil.Run(b, "qemu-img", "convert", "-f", "raw", "-O", "parallels", rawPath, imgPath)
	return rawPath, imgPath
}

func benchRead(b *testing.B, open func(context.Context, string, model.Options) (*model.Image, error), path string) {
	im, err := open(context.Background(), path, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	cur, _ := im.Current()
	buf := make([]byte, 1<<20)
	b.SetBytes(benchSize)
	b.ResetTimer()
	for b.Loop() {
		for off := int64(0); off < benchSize; off += int64(len(buf)) {
			if _, err := cur.Disk.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReadParallels reads a 64 MiB parallels image sequentially in 1 MiB
// reads; compare with BenchmarkReadRaw, the same bytes as a raw file.
func BenchmarkReadParallels(b *testing.B) {
	_, p := benchFixture(b)
	benchRead(b, Open, p)
}

// BenchmarkReadRaw is BenchmarkReadParallels's baseline.
func BenchmarkReadRaw(b *testing.B) {
	r, _ := benchFixture(b)
	benchRead(b, raw.Open, r)
}
