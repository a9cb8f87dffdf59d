package qcow2_test

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

const benchSize = 64 * mib

// benchRaw writes a raw file of benchSize bytes: random data with a few
// holes, or compressible text when text is set.
func benchRaw(b *testing.B, text bool) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "bench.raw")
	buf := make([]byte, benchSize)
	r := rand.New(rand.NewPCG(7, 8))
	if text {
		words := []string{"password ", "secret ", "the ", "disk ", "image ", "qcow2 ", "cluster ", "audit\n", "key=", "0123 "}
		for i := 0; i < len(buf); {
			i += copy(buf[i:], words[r.IntN(len(words))])
		}
	} else {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := r.Uint64()
			for j := range 8 {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		for h := 0; h < 4; h++ { // holes, so extents matter
			off := (h*16 + 3) * mib
			clear(buf[off : off+2*mib])
		}
	}
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// readAllExtents reads every allocated extent of d in 1 MiB blocks and
// returns the bytes read.
func readAllExtents(b *testing.B, d model.Disk, buf []byte) int64 {
	var n int64
	for e, err := range d.Extents(context.Background()) {
		if err != nil {
			b.Fatal(err)
		}
		if e.Source == model.SourceZero {
			continue
		}
		for off := e.Offset; off < e.End(); off += int64(len(buf)) {
			m := min(int64(len(buf)), e.End()-off)
			if _, err := d.ReadAt(buf[:m], off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
			n += m
		}
	}
	return n
}

func benchSequential(b *testing.B, path string) {
	im, err := formats.Open(context.Background(), path, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	cur, _ := im.Current()
	buf := make([]byte, mib)
	b.SetBytes(readAllExtents(b, cur.Disk, buf))
	b.ResetTimer()
	for b.Loop() {
		readAllExtents(b, cur.Disk, buf)
	}
}

// BenchmarkReadRaw is the baseline for BenchmarkReadQcow2: the same data as
// a raw file.
func BenchmarkReadRaw(b *testing.B) {
	benchSequential(b, benchRaw(b, false))
}

// BenchmarkReadQcow2 reads an uncompressed qcow2 (64 KiB clusters) holding
// the data of BenchmarkReadRaw. Target: within 1.3x of raw.
func BenchmarkReadQcow2(b *testing.B) {
	testutil.RequireTool(b, "qemu-img")
	src := benchRaw(b, false)
	img := filepath.Join(b.TempDir(), "bench.qcow2")
	qemuImg(b, "convert", "-O", "qcow2", src, img)
	benchSequential(b, img)
}

// BenchmarkReadZstd reads a zstd-compressed qcow2 with GOMAXPROCS
// goroutines, each taking 1 MiB blocks of the allocated extents in turn.
func BenchmarkReadZstd(b *testing.B) {
	testutil.RequireTool(b, "qemu-img")
	src := benchRaw(b, true)
	img := filepath.Join(b.TempDir(), "bench.qcow2")
	qemuImg(b, "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", src, img)
	im, err := formats.Open(context.Background(), img, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	cur, _ := im.Current()
	type block struct{ off, n int64 }
	var blocks []block
	var total int64
	for e, err := range cur.Disk.Extents(context.Background()) {
		if err != nil {
			b.Fatal(err)
		}
		if e.Source == model.SourceZero {
			continue
		}
		for off := e.Offset; off < e.End(); off += mib {
			blocks = append(blocks, block{off, min(mib, e.End()-off)})
			total += min(mib, e.End()-off)
		}
	}
	b.SetBytes(total)
	workers := runtime.GOMAXPROCS(0)
	b.ReportMetric(float64(workers), "goroutines")
	b.ResetTimer()
	for b.Loop() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				buf := make([]byte, mib)
				for {
					i := next.Add(1) - 1
					if i >= int64(len(blocks)) {
						return
					}
					if _, err := cur.Disk.ReadAt(buf[:blocks[i].n], blocks[i].off); err != nil && err != io.EOF {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
