package blockmaptest

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

// BenchSize is what the read benchmarks read: 64 MiB.
const BenchSize = 64 << 20

// BenchFixture writes BenchSize bytes of incompressible data as raw and
// converts them with qemu-img to format (with options opts, if any).
func BenchFixture(b *testing.B, format string, opts ...string) (rawPath, imgPath string) {
	b.Helper()
	testutil.RequireTool(b, "qemu-img")
	dir := b.TempDir()
	rawPath = filepath.Join(dir, "bench.raw")
	data := make([]byte, BenchSize)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(data)
	if err := os.WriteFile(rawPath, data, 0o644); err != nil {
		b.Fatal(err)
	}
	imgPath = filepath.Join(dir, "bench.img")
	testutil.Run(b, "qemu-img", append(append([]string{"convert", "-f", "raw", "-O", format}, opts...), rawPath, imgPath)...)
	return rawPath, imgPath
}

// BenchRead reads the current view of the image at path sequentially in
// 1 MiB reads.
func BenchRead(b *testing.B, open OpenFunc, path string) {
	im, err := open(context.Background(), path, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	cur, _ := im.Current()
	buf := make([]byte, 1<<20)
	b.SetBytes(BenchSize)
	b.ResetTimer()
	for b.Loop() {
		for off := int64(0); off < BenchSize; off += int64(len(buf)) {
			if _, err := cur.Disk.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	}
}

// BenchReadRaw is the baseline of a format's read benchmark: the same
// bytes as a raw file.
func BenchReadRaw(b *testing.B, format string, opts ...string) {
	r, _ := BenchFixture(b, format, opts...)
	BenchRead(b, raw.Open, r)
}
